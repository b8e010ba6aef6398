"""What one request of each kind the operator makes costs the API server and etcd, in isolation.

  request_cost.py PIDS N ROUNDS BLOCKS [MODES]

On N Certificates in namespace `pc` (no operator running): a status write as a forced
server-side apply (`apply`), as a JSON Patch replacing /status (`json`, what the operator
sends) and as a merge patch (`merge`), each a real change; a Certificate create, a TLS Secret
create and an Event create. Each mode runs ROUNDS x N requests over 4 connections per block,
the modes interleaved in BLOCKS blocks; CPU is the utime+stime delta of kube-apiserver and etcd
(their pid files in PIDS). MODES: a comma-separated subset. Run against a testenv with the CRDs
installed, e.g.

  export CERTSMITH_TESTENV_STATE=$PWD/.testenv/cost; bash tests/testenv/testenv.sh up
  source $CERTSMITH_TESTENV_STATE/env; kubectl apply --server-side -f crds/certsmith.yaml
  CERTSMITH_CERTS=$CERTSMITH_TESTENV_STATE/certs KUBE_API=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}') \
    python3 tests/bench/request_cost.py $CERTSMITH_TESTENV_STATE/pids 200 5 2
  bash tests/testenv/testenv.sh down
"""
import concurrent.futures, http.client, json, os, ssl, sys, threading, time, urllib.parse
certs, api, pids = os.environ["CERTSMITH_CERTS"], os.environ["KUBE_API"], sys.argv[1]
N, ROUNDS, BLOCKS = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
url = urllib.parse.urlparse(api)
ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")
ctx.load_cert_chain(f"{certs}/admin.crt", f"{certs}/admin.key")
local = threading.local()
def call(method, path, body, ctype="application/json"):
    if not hasattr(local, "con"):
        local.con = http.client.HTTPSConnection(url.hostname, url.port, context=ctx)
    local.con.request(method, path, body=json.dumps(body), headers={"Content-Type": ctype})
    r = local.con.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]}")
def ticks(name):
    pid = open(f"{pids}/{name}.pid").read().strip()
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
base = "/apis/certsmith.dev/v1alpha1/namespaces/pc/certificates"
try:
    call("POST", "/api/v1/namespaces", {"metadata": {"name": "pc"}})
except SystemExit:  # it exists
    pass
def tolerant(f):  # a Certificate left from an earlier run is reused
    try:
        f()
    except SystemExit:
        pass
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(lambda i: tolerant(lambda: call("POST", base, {"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
        "metadata": {"name": f"c-{i}"}, "spec": {"secretName": f"c-{i}-tls", "issuerRef": {"name": "ca"},
        "dnsNames": [f"c-{i}.pc.svc"], "uris": [f"spiffe://cluster.local/ns/pc/sa/c-{i}"], "duration": "24h"}})), range(N)))
def status(i, r):
    t = f"2026-12-02T06:{r % 60:02d}:00Z"
    return {"conditions": [
        {"type": "Ready", "status": "True", "reason": "Issued", "message": f"certificate issued, revision {r}, valid until 2026-12-03", "lastTransitionTime": t, "observedGeneration": 1},
        {"type": "Issuing", "status": "False", "reason": "Issued", "message": "up to date", "lastTransitionTime": t, "observedGeneration": 1}],
        "notBefore": t, "notAfter": "2026-12-03T06:00:00Z", "renewalTime": "2026-12-02T22:00:00Z", "revision": r,
        "serialNumber": f"{i:08x}{r:024x}", "authorityKeyId": "ab" * 20, "observedGeneration": 1,
        "history": [{"serialNumber": f"{i:08x}{r:024x}", "notBefore": t, "notAfter": "2026-12-03T06:00:00Z",
                     "issuer": "Issuer/pc/ca", "caFingerprint": "cd" * 32}]}
modes = {
    "apply": lambda i, r: call("PATCH", f"{base}/c-{i}/status?fieldManager=certsmith&force=true",
        {"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "status": status(i, r)}, "application/apply-patch+yaml"),
    "json": lambda i, r: call("PATCH", f"{base}/c-{i}/status?fieldManager=certsmith",
        [{"op": "add", "path": "/status", "value": status(i, r)}], "application/json-patch+json"),
    "merge": lambda i, r: call("PATCH", f"{base}/c-{i}/status?fieldManager=certsmith",
        {"status": status(i, r)}, "application/merge-patch+json"),
    "cert-create": lambda i, r: call("POST", base, {"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
        "metadata": {"name": f"n-{r}-{i}"}, "spec": {"secretName": f"n-{r}-{i}-tls", "issuerRef": {"name": "ca"},
        "dnsNames": [f"n-{i}.pc.svc"], "uris": [f"spiffe://cluster.local/ns/pc/sa/n-{i}"], "duration": "24h"}}),
    "secret-create": lambda i, r: call("POST", "/api/v1/namespaces/pc/secrets", {"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": f"s-{r}-{i}", "labels": {"certsmith.dev/managed": "true"},
                     "annotations": {"certsmith.dev/certificate": f"c-{i}", "certsmith.dev/revision": "1", "certsmith.dev/issued-at": "2026-12-02T06:00:00Z"}},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "QUFB" * 600, "tls.key": "QUFB" * 80, "ca.crt": "QUFB" * 200}}),
    "event-create": lambda i, r: call("POST", "/apis/events.k8s.io/v1/namespaces/pc/events", {"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": f"c-{i}.{r:x}"}, "eventTime": "2026-12-02T06:00:00.000000Z", "reportingController": "certsmith",
        "reportingInstance": "certsmith-0", "action": "Issue", "reason": "Issued", "type": "Normal", "note": "certificate issued",
        "regarding": {"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "namespace": "pc", "name": f"c-{i}"}}),
}
if len(sys.argv) > 5: modes = {m: modes[m] for m in sys.argv[5].split(",")}
spent = {m: [0, 0, 0.0] for m in modes}
r = 0
for b in range(BLOCKS):
    for m, f in modes.items():
        for _ in range(ROUNDS):
            r += 1
            a, e, t = ticks("kube-apiserver"), ticks("etcd"), time.time()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda i: f(i, r), range(N)))
            s = spent[m]
            s[0] += ticks("kube-apiserver") - a
            s[1] += ticks("etcd") - e
            s[2] += time.time() - t
hz, writes = os.sysconf("SC_CLK_TCK"), N * ROUNDS * BLOCKS
for m, (a, e, t) in spent.items():
    print(f"{m:6} {writes} writes: kube-apiserver {1000*a/hz/writes:.2f} ms, etcd {1000*e/hz/writes:.2f} ms per write; {writes/t:.0f} writes/s")
