#!/usr/bin/env bash
# `make demo`: the operator's main job on the built-in local control plane. Starts a private
# control plane, installs the CRDs, runs the operator, applies config/samples/ (a self-signed
# root, a CA ClusterIssuer, two mTLS agents), waits for Ready and shows what was issued.
# Stays up (operator log streaming) until Ctrl-C; `--once` exits after showing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
once=0
[ "${1:-}" = "--once" ] && once=1
export CERTSMITH_TESTENV_STATE="$root/.testenv/demo"
op_pid=""
cleanup() {
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  bash "$root/tests/testenv/testenv.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

cargo build --quiet
bash "$root/tests/testenv/testenv.sh" up
# shellcheck disable=SC1091
source "$CERTSMITH_TESTENV_STATE/env"
kubectl apply --server-side -f "$root/crds/certsmith.yaml" >/dev/null
kubectl wait --for condition=Established crd --all --timeout=60s >/dev/null
"$root/target/debug/certsmith" controller --cluster-resource-namespace certsmith --log-format text \
  --metrics-addr 127.0.0.1:0 >"$CERTSMITH_TESTENV_STATE/logs/certsmith.log" 2>&1 &
op_pid=$!
echo "==> kubectl apply -f config/samples/"
kubectl apply -f "$root/config/samples/"
for cert in certsmith/agents-root agents/orders-agent agents/billing-agent; do
  kubectl wait --for condition=Ready=True -n "${cert%/*}" "certificate/${cert#*/}" --timeout=60s >/dev/null
done
echo; echo "==> kubectl get certificates -A"
kubectl get certificates -A
for s in agents/orders-agent-tls agents/billing-agent-tls; do
  echo; echo "==> Secret $s"
  kubectl get secret -n "${s%/*}" "${s#*/}" -o 'jsonpath={.data.tls\.crt}' | base64 -d |
    openssl x509 -noout -subject -issuer -serial -dates -ext subjectAltName,extendedKeyUsage
done
if [ $once = 1 ]; then exit 0; fi
echo; echo "==> operator log (Ctrl-C stops the operator and the control plane)"
tail -f "$CERTSMITH_TESTENV_STATE/logs/certsmith.log"
