#!/usr/bin/env bash
# N PodCertificateRequests (default 1,000) answered by a CA ClusterIssuer, on a private local
# control plane. Each request is made as a kubelet makes it: a Pod bound to the environment's
# Node, a new ECDSA P-256 key, the proof of possession (the pod UID signed with the key), created
# with the node's own client certificate. All requests exist before the operator starts
# (a backlog), so the figure is the operator's own pace: wall time from the operator's start to
# every request answered, requests per second, and the operator's peak RSS (VmHWM).
#   bash tests/bench/pod_certs.sh [--count 1000] [--concurrency 16] [--debug]
# --debug runs target/debug/certsmith as built (no release build): slower than a release.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
count=1000 concurrency=16 profile=release
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

export CERTSMITH_TESTENV_STATE="$root/.testenv/bench-pods-$$"
work=$(mktemp -d)
op_pid=""
cleanup() {
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  bash "$root/tests/testenv/testenv.sh" down || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ "$profile" = release ]; then cargo build --release --quiet; fi
binary="$root/target/$profile/certsmith"
[ -x "$binary" ] || { echo "no $binary: build it first" >&2; exit 1; }
bash "$root/tests/testenv/testenv.sh" up
# shellcheck disable=SC1091
source "$CERTSMITH_TESTENV_STATE/env"
certs="$CERTSMITH_TESTENV_STATE/certs"
api=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')
# Python with `cryptography` (for the keys): the AWS emulator's virtualenv has it.
python=$(dirname "$(ls "$HOME"/.cache/certsmith/moto-*/venv/bin/moto_server | head -1)")/python

kubectl apply --server-side -f "$root/crds/certsmith.yaml" >/dev/null
kubectl wait --for condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace certsmith >/dev/null
kubectl create namespace bench >/dev/null
kubectl create serviceaccount -n bench agent >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: $CERTSMITH_TESTENV_NODE_NAME}
YAML
metrics_port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_operator() {
  "$binary" controller --concurrency "$concurrency" --log-format json \
    --cluster-resource-namespace certsmith \
    --metrics-addr "127.0.0.1:$metrics_port" >>"$work/operator.log" 2>&1 &
  op_pid=$!
}
start_operator
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: certsmith.dev/v1alpha1
kind: Issuer
metadata: {name: selfsigned, namespace: certsmith}
spec: {selfSigned: {}}
---
apiVersion: certsmith.dev/v1alpha1
kind: Certificate
metadata: {name: root, namespace: certsmith}
spec: {secretName: root-ca, issuerRef: {name: selfsigned}, commonName: bench pods root, isCA: true}
---
apiVersion: certsmith.dev/v1alpha1
kind: ClusterIssuer
metadata: {name: pods}
spec:
  ca: {secretName: root-ca}
  policy: {spiffe: {trustDomain: cluster.local, requireServiceAccount: true}, maxDuration: 24h}
YAML
kubectl wait -n certsmith --for condition=Ready=True certificate/root --timeout=60s >/dev/null
kubectl wait --for condition=Ready=True clusterissuer/pods --timeout=60s >/dev/null
# The backlog is made while the operator is down.
kill "$op_pid" && wait "$op_pid" 2>/dev/null || true
op_pid=""

PYTHONPATH="$root/tests/bench" "$python" - "$api" "$certs" "$count" "$CERTSMITH_TESTENV_NODE_NAME" <<'PY'
import base64, concurrent.futures, http.client, json, ssl, sys, threading, time, urllib.parse
from kube_client import client
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
api, certs, count, node_name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
admin, node = client(certs, "admin", api), client(certs, "node", api)
node_uid = admin("GET", f"/api/v1/nodes/{node_name}")["metadata"]["uid"]
sa_uid = admin("GET", "/api/v1/namespaces/bench/serviceaccounts/agent")["metadata"]["uid"]
b64 = lambda b: base64.b64encode(b).decode()
def pod(i):
    name = f"agent-{i}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": node_name, "serviceAccountName": "agent", "automountServiceAccountToken": False,
                    "containers": [{"name": "app", "image": "registry.example/app:1"}]}}
    return admin("POST", "/api/v1/namespaces/bench/pods", pod)["metadata"]["uid"]
def one(i, uid):
    name = f"agent-{i}"
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pcr = {"apiVersion": "certificates.k8s.io/v1beta1", "kind": "PodCertificateRequest",
           "metadata": {"name": f"{name}-req"},
           "spec": {"signerName": "clusterissuers.certsmith.dev/pods", "podName": name, "podUID": uid,
                    "serviceAccountName": "agent", "serviceAccountUID": sa_uid,
                    "nodeName": node_name, "nodeUID": node_uid, "maxExpirationSeconds": 86400,
                    "pkixPublicKey": b64(spki),
                    "proofOfPossession": b64(key.sign(uid.encode(), ec.ECDSA(hashes.SHA256())))}}
    node("POST", "/apis/certificates.k8s.io/v1beta1/namespaces/bench/podcertificaterequests", pcr)
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    uids = list(pool.map(pod, range(count)))
    list(pool.map(one, range(count), uids))
print(f"created {count} pods and PodCertificateRequests (as node {node_name})", file=sys.stderr)
PY

start=$(date +%s.%N)
start_operator
PYTHONPATH="$root/tests/bench" "$python" - "$api" "$certs" "$count" <<'PY'
import base64, concurrent.futures, http.client, json, ssl, sys, threading, time, urllib.parse
from kube_client import client
import collections, time
api, certs, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = client(certs, "admin", api)
deadline = time.time() + 1800
while True:
    items = admin("GET", "/apis/certificates.k8s.io/v1beta1/namespaces/bench/podcertificaterequests")["items"]
    answers = collections.Counter(
        next((c["type"] + "/" + c["reason"] for c in (i.get("status") or {}).get("conditions", [])
              if c["type"] in ("Issued", "Denied", "Failed")), "pending") for i in items)
    if answers["pending"] == 0 and len(items) == count:
        print(dict(answers), file=sys.stderr)
        break
    if time.time() > deadline:
        sys.exit(f"not all answered: {dict(answers)}")
    time.sleep(0.2)
PY
end=$(date +%s.%N)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
PYTHONPATH="$root/tests/bench" "$python" - <<PY
elapsed = $end - $start
print(f"pod certificate requests answered  $count in {elapsed:.1f} s ({$count / elapsed:.1f}/s, operator started with all of them pending)")
print(f"operator peak RSS                  {$rss_kib / 1024:.1f} MiB (VmHWM, $profile build, --concurrency $concurrency)")
PY
