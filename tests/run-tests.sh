#!/usr/bin/env bash
# `make test`: a private test environment for this run, every Rust test against it, and a
# teardown that happens whatever the tests do.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CERTSMITH_TESTENV_STATE="${CERTSMITH_TESTENV_STATE:-$root/.testenv/test-$$}"
launcher="$root/tests/testenv/testenv.sh"
teardown() { bash "$launcher" down || true; }
trap teardown EXIT INT TERM

# Build the Rust side first: it does not need the servers, and a compile error should not
# cost an environment start.
cargo build --all-targets
# helm and kube-score for the chart tests (built from the Go module proxy once, then cached).
CERTSMITH_TOOLS_BIN=$(bash "$root/tests/testenv/tools/build.sh")
export CERTSMITH_TOOLS_BIN
# Java's keytool for the JKS tests (installed from Debian's packages when missing).
CERTSMITH_KEYTOOL=$(bash "$root/tests/testenv/tools/keytool.sh")
export CERTSMITH_KEYTOOL
bash "$launcher" up
# shellcheck disable=SC1091
source "$CERTSMITH_TESTENV_STATE/env"
cargo test --all-targets -- --test-threads="${CERTSMITH_TEST_THREADS:-4}"
# The operator binary, as users run it, on the samples.
bash "$root/e2e/samples.sh"
