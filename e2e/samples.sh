#!/usr/bin/env bash
# The operator binary against the local control plane: `kubectl apply -f config/samples/`
# must yield Ready certificates whose Secrets pass `openssl verify -CAfile ca.crt tls.crt`
# and whose keys match their certificates. Needs an environment that is up (env sourced).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
: "${KUBECONFIG:?source the env file of the test environment first}"
bin="${CERTSMITH_BIN:-$root/target/debug/certsmith}"
work=$(mktemp -d)
op_pid=""
cleanup() {
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

kubectl apply --server-side -f "$root/crds/certsmith.yaml" >/dev/null
kubectl wait --for condition=Established crd --all --timeout=60s >/dev/null
"$bin" controller --cluster-resource-namespace certsmith --log-format text --metrics-addr 127.0.0.1:0 \
  >"$work/operator.log" 2>&1 &
op_pid=$!
kubectl apply -f "$root/config/samples/" >/dev/null
for cert in certsmith/agents-root agents/orders-agent agents/billing-agent; do
  if ! kubectl wait --for condition=Ready=True -n "${cert%/*}" "certificate/${cert#*/}" --timeout=60s >/dev/null; then
    echo "samples: $cert not Ready" >&2
    kubectl get certificate -n "${cert%/*}" "${cert#*/}" -o yaml >&2
    tail -n 30 "$work/operator.log" >&2
    exit 1
  fi
done
kubectl get certificates -A
# Every sample Certificate is allowed by its issuer's policy as the cluster now holds it.
"$bin" policy check -f "$root/config/samples/" --cluster-resource-namespace certsmith
kubectl get clusterissuers selfsigned agents-ca -o wide
for s in agents/orders-agent-tls agents/billing-agent-tls certsmith/agents-root-ca; do
  for k in tls.crt tls.key ca.crt; do
    kubectl get secret -n "${s%/*}" "${s#*/}" -o "jsonpath={.data.${k//./\\.}}" | base64 -d >"$work/$k"
  done
  openssl verify -CAfile "$work/ca.crt" "$work/tls.crt"
  cert_pub=$(openssl x509 -in "$work/tls.crt" -noout -pubkey)
  key_pub=$(openssl pkey -in "$work/tls.key" -pubout)
  [ "$cert_pub" = "$key_pub" ] || { echo "samples: $s key does not match its certificate" >&2; exit 1; }
  echo "$s: key matches certificate"
done
# The agents' trust bundle: the ConfigMap in their namespace anchors both agents' chains.
if ! kubectl wait --for condition=Ready=True trustbundle/agents-trust --timeout=60s >/dev/null; then
  echo "samples: TrustBundle agents-trust not Ready" >&2
  kubectl get trustbundle agents-trust -o yaml >&2
  tail -n 30 "$work/operator.log" >&2
  exit 1
fi
kubectl get trustbundle agents-trust
kubectl get configmap -n agents agents-trust -o 'jsonpath={.data.ca\.crt}' >"$work/bundle.crt"
for s in orders-agent-tls billing-agent-tls; do
  kubectl get secret -n agents "$s" -o 'jsonpath={.data.tls\.crt}' | base64 -d >"$work/leaf.crt"
  openssl verify -CAfile "$work/bundle.crt" "$work/leaf.crt" >/dev/null
  echo "agents/$s: verifies against the agents-trust bundle"
done
kubectl delete -f "$root/config/samples/" --wait=false >/dev/null
echo "samples: OK"
