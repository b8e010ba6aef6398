#!/usr/bin/env bash
# `make demo`: the operator's main job on the built-in local control plane.
#   1. starts a private control plane, installs the CRDs and runs the operator;
#   2. applies config/samples/ (a self-signed root, a CA ClusterIssuer, an mTLS server agent
#      and a client agent with SPIFFE IDs and 5-minute certificates renewed every ~30 s);
#   3. waits for Ready and shows the certificates, then has agents-ca's SPIFFE policy refuse
#      an impostor asking for another namespace's identity;
#   4. projects each agent's Secret (key and certificate) and the agents-trust TrustBundle
#      ConfigMap (ca.crt) into a directory (atomically, as the kubelet does) and runs a real
#      mTLS server and client (examples/mtls.rs) that reload their files on change, printing
#      every rotation and the failed-handshake count, which must stay 0;
#   5. meanwhile rotates the root CA: the new root is published in agents-trust first, both
#      leaves move to it (IssuerCAChanged), then the old root leaves the bundle.
# Ctrl-C stops everything it started; `--once` exits after the CA rotation and two rotations
# of each certificate.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
once=0
[ "${1:-}" = "--once" ] && once=1
t0=$(date +%s.%N)
export CERTSMITH_TESTENV_STATE="$root/.testenv/demo"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash "$root/tests/testenv/testenv.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --quiet --bin certsmith --example mtls
bin="$root/target/debug"
bash "$root/tests/testenv/testenv.sh" up
# shellcheck disable=SC1091
source "$CERTSMITH_TESTENV_STATE/env"
kubectl apply --server-side -f "$root/crds/certsmith.yaml" >/dev/null
kubectl wait --for condition=Established crd --all --timeout=60s >/dev/null
"$bin/certsmith" controller --cluster-resource-namespace certsmith --log-format text \
  --metrics-addr 127.0.0.1:0 >"$CERTSMITH_TESTENV_STATE/logs/certsmith.log" 2>&1 &
pids+=($!)

echo "==> kubectl apply -f config/samples/"
kubectl apply -f "$root/config/samples/"
for cert in certsmith/agents-root agents/orders-agent agents/billing-agent; do
  kubectl wait --for condition=Ready=True -n "${cert%/*}" "certificate/${cert#*/}" --timeout=60s >/dev/null
done
echo; echo "==> kubectl get certificates -A"
kubectl get certificates -A
for s in orders-agent-tls billing-agent-tls; do
  echo; echo "==> Secret agents/$s"
  kubectl get secret -n agents "$s" -o 'jsonpath={.data.tls\.crt}' | base64 -d |
    openssl x509 -noout -subject -issuer -serial -dates -ext subjectAltName,extendedKeyUsage
done

# agents-ca's SPIFFE policy in action: a Certificate in `agents` asking for another
# namespace's identity is refused before anything is signed, and no Secret appears.
echo; echo "==> an impostor in agents asks agents-ca for spiffe://cluster.local/ns/payments/sa/billing"
kubectl get clusterissuer agents-ca -o wide
kubectl apply -f - <<'YAML'
apiVersion: certsmith.dev/v1alpha1
kind: Certificate
metadata: {name: impostor, namespace: agents}
spec:
  secretName: impostor-tls
  issuerRef: {name: agents-ca, kind: ClusterIssuer}
  uris: [spiffe://cluster.local/ns/payments/sa/billing]
YAML
kubectl wait --for jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'=PolicyDenied \
  -n agents certificate/impostor --timeout=60s >/dev/null
kubectl get certificate -n agents impostor \
  -o 'jsonpath=Ready={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}{"\n"}'
if kubectl get secret -n agents impostor-tls >/dev/null 2>&1; then
  echo "demo: FAILED (the impostor got a Secret)" >&2
  exit 1
fi
kubectl delete certificate -n agents impostor >/dev/null

# Keep DIR/current pointing at the Secret's key and certificate and the trust bundle's CAs:
# each change is written to a new directory and the symlink is swapped with one rename, so
# readers never see a mix. Trust comes from the TrustBundle ConfigMap, not the Secret's ca.crt.
project() { # SECRET DIR
  local secret=$1 dir=$2 last="" n=0
  mkdir -p "$dir"
  while true; do
    local json trust
    json=$(kubectl get secret -n agents "$secret" -o json 2>/dev/null) || { sleep 1; continue; }
    trust=$(kubectl get configmap -n agents agents-trust -o json 2>/dev/null) || { sleep 1; continue; }
    if [ "$json$trust" != "$last" ]; then
      n=$((n + 1))
      mkdir -p "$dir/..data-$n"
      for k in tls.crt tls.key; do
        python3 -c 'import base64,json,sys; d=json.load(sys.stdin)["data"]; sys.stdout.buffer.write(base64.b64decode(d[sys.argv[1]]))' "$k" \
          <<<"$json" >"$dir/..data-$n/$k"
      done
      python3 -c 'import json,sys; sys.stdout.write(json.load(sys.stdin)["data"]["ca.crt"])' \
        <<<"$trust" >"$dir/..data-$n/ca.crt"
      ln -sfn "..data-$n" "$dir/current.tmp" && mv -T "$dir/current.tmp" "$dir/current"
      last=$json$trust
    fi
    sleep 1
  done
}
project orders-agent-tls "$work/orders" &
pids+=($!)
project billing-agent-tls "$work/billing" &
pids+=($!)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo; echo "==> mTLS: orders-agent (server) <-> billing-agent (client) on 127.0.0.1:$port"
"$bin/examples/mtls" server --dir "$work/orders/current" --listen "127.0.0.1:$port" &
pids+=($!)
# Start the client once the server accepts connections.
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
# The CA rotation, once the agents talk: renew the root; agents-ca publishes the new root in
# agents-trust, signs with it only after trustPropagationDelay (shortened here from 5m: the
# projection above refreshes every second), moves both leaves over rotationWindow, then drops
# the old root. The client keeps going until this is done.
rotated="$work/ca-rotated"
rotate_ca() {
  sleep 8
  kubectl patch clusterissuer agents-ca --type merge \
    -p '{"spec":{"ca":{"trustPropagationDelay":"10s","rotationWindow":"10s"}}}' >/dev/null
  local old
  old=$(kubectl get secret -n certsmith agents-root-ca -o 'jsonpath={.data.tls\.crt}' | base64 -d |
    openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
  echo "ca rotation: renewing the root (serial $(kubectl get certificate -n certsmith agents-root -o 'jsonpath={.status.serialNumber}'))"
  "$bin/certsmith" renew -n certsmith agents-root
  local last="" phase="" i
  for i in $(seq 1 600); do
    phase=$(kubectl get clusterissuer agents-ca -o 'jsonpath={.status.caRotation.phase} old={.status.caRotation.leavesOnPrevious} new={.status.caRotation.leavesOnActive}')
    if [ "$phase" != "$last" ]; then
      echo "ca rotation: agents-ca $phase"
      last=$phase
    fi
    case $phase in Retired*) break ;; esac
    sleep 0.5
  done
  case $phase in Retired*) ;; *) echo "ca rotation: did not finish" >&2; return 1 ;; esac
  local new bundle
  kubectl get secret -n certsmith agents-root-ca -o 'jsonpath={.data.tls\.crt}' | base64 -d >"$work/new-root.pem"
  new=$(openssl x509 -noout -fingerprint -sha256 <"$work/new-root.pem" | cut -d= -f2)
  for s in orders-agent-tls billing-agent-tls; do
    kubectl get secret -n agents "$s" -o 'jsonpath={.data.tls\.crt}' | base64 -d >"$work/$s.pem"
    openssl verify -CAfile "$work/new-root.pem" "$work/$s.pem" >/dev/null ||
      { echo "ca rotation: $s is not on the new root" >&2; return 1; }
  done
  for i in $(seq 1 60); do
    bundle=$(kubectl get configmap -n agents agents-trust -o 'jsonpath={.data.ca\.crt}' |
      openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
    [ "$(kubectl get configmap -n agents agents-trust -o 'jsonpath={.data.ca\.crt}' | grep -c 'BEGIN CERTIFICATE')" = 1 ] &&
      [ "$bundle" = "$new" ] && break
    sleep 0.5
  done
  [ "$bundle" = "$new" ] || { echo "ca rotation: the old root is still in agents-trust" >&2; return 1; }
  echo "ca rotation: done: root ${old:0:11}... -> ${new:0:11}..., both leaves on the new root, agents-trust holds only the new root"
  touch "$rotated"
}
rotate_ca &
rotator=$!
pids+=($rotator)
rotations=0
[ $once = 1 ] && rotations=2
status=0
"$bin/examples/mtls" client --dir "$work/billing/current" --connect "127.0.0.1:$port" \
  --server-name orders-agent.agents.svc --rotations "$rotations" --timeout-secs 300 \
  --until-file "$rotated" |
  while IFS= read -r line; do
    case $line in
      "client: first handshake"*) printf '%s (%.1fs after make demo started)\n' "$line" "$(python3 -c "import sys,time; print(time.time() - float(sys.argv[1]))" "$t0")" ;;
      *) echo "$line" ;;
    esac
  done || status=$?
if [ $once = 1 ] && ! wait "$rotator"; then
  status=1
fi
if [ $status -ne 0 ]; then
  echo "demo: FAILED (a handshake failed or a rotation was missed)" >&2
  exit 1
fi
echo "demo: OK"
