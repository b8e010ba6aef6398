# certsmith — the two commands are `make demo` and `make test`; see README.md.
SHELL := /bin/bash
CARGO ?= cargo
TESTENV := tests/testenv/testenv.sh

.PHONY: manifests tools demo build test test-unit testenv-up testenv-down testenv-env crds lint fmt bench demo clean

build:
	$(CARGO) build --release

## Everything: builds the test servers if missing, starts a private environment, runs every
## Rust test (unit and integration) against it, and tears it down even when tests fail.
test:
	@bash tests/run-tests.sh

## Only the pure unit tests (no servers).
test-unit:
	$(CARGO) test --lib

testenv-up:
	@bash $(TESTENV) up

testenv-down:
	@bash $(TESTENV) down

testenv-env:
	@bash $(TESTENV) env

## Regenerate crds/ from the Rust types (a test fails when they drift).
crds:
	$(CARGO) run --quiet -- crds > crds/certsmith.yaml
	$(CARGO) run --quiet -- crds --helm > charts/certsmith/templates/crds.yaml

## helm and kube-score, built from the Go module proxy (cached; prints their bin directory).
tools:
	@bash tests/testenv/tools/build.sh

## Regenerate config/default/ from the chart with default values (a test fails when they drift).
manifests:
	@bash tests/chart/render-config.sh

## Format, lints, and drift of generated files: CRDs (unit tests in src/crds.rs) and
## config/default (rendered from the chart; builds helm once, then cached).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --quiet --lib crds::
	@bash tests/chart/render-config.sh --check

fmt:
	$(CARGO) fmt

## 1,000 ECDSA Certificates on a CA issuer: certs/s; CPU per cert of the operator, kube-apiserver, etcd;
## API reads/writes per cert; RSS; idle writes and CPU. ARGS: --count --backlog --restart --unrelated
## --renewals --profile --issuer --debug ... (usage at the top of tests/bench/run.sh).
bench:
	@bash tests/bench/run.sh $(ARGS)

## The operator's main job on the built-in local control plane (ARGS=--once to exit after).
demo:
	@bash e2e/demo.sh $(ARGS)
