"""`make bench ARGS=--rotation`: the CA issuer's root rotates under N Ready leaves.

Run by tests/bench/run.sh once every leaf is Ready, with the Python of the AWS emulator's
virtualenv (it has `cryptography`). Publishes the issuer's CAs with a TrustBundle into the
bench namespace, renews the root, then samples until the old root is retired: every sample
reads the bundle ConfigMap, then every leaf Secret, and checks each leaf against the bundle
(its signature verifies with a CA the bundle holds). Prints the time until every leaf was on
the new root, until the old root left the bundle, the peak re-issue rate (from the leaves'
`certsmith.dev/issued-at`), and the samples and violations found.

  rotation.py COUNT CERTSMITH_BIN
"""

import base64
import calendar
import collections
import json
import subprocess
import sys
import time

from cryptography import x509

count, certsmith = int(sys.argv[1]), sys.argv[2]


def kubectl(*args, stdin=None):
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True,
                          input=stdin).stdout


def pems(text):
    return x509.load_pem_x509_certificates(text.encode()) if "BEGIN" in text else []


def signed_by(leaf, ca):
    try:
        leaf.verify_directly_issued_by(ca)
        return True
    except Exception:
        return False


def root_now():
    s = json.loads(kubectl("get", "secret", "-n", "bench", "root-ca", "-o", "json"))
    return x509.load_pem_x509_certificate(base64.b64decode(s["data"]["tls.crt"]))


def leaves():
    out = json.loads(kubectl("get", "secrets", "-n", "bench", "-l", "certsmith.dev/managed=true",
                             "-o", "json"))
    found = {}
    for s in out["items"]:
        name = s["metadata"]["name"]
        if not name.startswith("agent-"):
            continue
        crt = x509.load_pem_x509_certificate(base64.b64decode(s["data"]["tls.crt"]))
        issued_at = s["metadata"].get("annotations", {}).get("certsmith.dev/issued-at")
        found[name] = (crt, issued_at)
    return found


def rotation():
    return json.loads(kubectl("get", "issuer", "-n", "bench", "ca", "-o",
                              "jsonpath={.status.caRotation}") or "{}")


kubectl("label", "namespace", "bench", "certsmith.dev/trust=bench", "--overwrite")
kubectl("apply", "-f", "-", stdin="""
apiVersion: certsmith.dev/v1alpha1
kind: TrustBundle
metadata: {name: bench-trust}
spec:
  sources: [{issuerRef: {name: ca, kind: Issuer, namespace: bench}}]
  target:
    configMap: {key: ca.crt}
    namespaceSelector: {matchLabels: {certsmith.dev/trust: bench}}
""")
kubectl("wait", "--for", "condition=Ready=True", "trustbundle/bench-trust", "--timeout=60s")
old = root_now()
start = time.time()
subprocess.run([certsmith, "renew", "-n", "bench", "root"], check=True, capture_output=True)

samples = violations = 0
all_moved_seen = retired_at = None
phases = []
while time.time() - start < 3600:
    bundle = pems(json.loads(kubectl("get", "configmap", "-n", "bench", "bench-trust", "-o",
                                     "json"))["data"]["ca.crt"])
    current = leaves()
    samples += 1
    bad = [n for n, (crt, _) in current.items() if not any(signed_by(crt, ca) for ca in bundle)]
    if bad:
        violations += len(bad)
        print(f"  sample {samples}: {len(bad)} leaves without their CA in the bundle, e.g. {bad[:3]}")
    r = rotation()
    phase = r.get("phase")
    if not phases or phases[-1][0] != phase:
        phases.append((phase, time.time() - start))
    on_old = sum(1 for crt, _ in current.values() if signed_by(crt, old))
    if on_old == 0 and all_moved_seen is None and phase != "Publishing":
        all_moved_seen = time.time() - start
    if phase == "Retired" and len(bundle) == 1:
        retired_at = time.time() - start
        break
    time.sleep(2)

new = root_now()
final = leaves()
on_new = sum(1 for crt, _ in final.values() if signed_by(crt, new))
moves = sorted(
    calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ"))
    for crt, at in final.values() if at and signed_by(crt, new))
per_second = collections.Counter(int(t) for t in moves)
peak_1s = max(per_second.values(), default=0)
peak_10s = max((sum(per_second.get(s + i, 0) for i in range(10)) for s in per_second), default=0)
first = moves[0] - start if moves else float("nan")
last = moves[-1] - start if moves else float("nan")
print(f"rotation: leaves on the new root {on_new} of {count}")
print(f"rotation: phases {', '.join(f'{p} at {t:.0f} s' for p, t in phases)}")
print(f"rotation: first leaf moved {first:.0f} s after the renewal, last {last:.0f} s "
      f"(all seen on the new root at {all_moved_seen or float('nan'):.0f} s)")
print(f"rotation: old root left the bundle {retired_at or float('nan'):.0f} s after the renewal")
print(f"rotation: peak re-issue rate {peak_1s}/s (1 s), {peak_10s / 10:.1f}/s (10 s)")
print(f"rotation: {samples} samples of the bundle and all {count} leaves, "
      f"{violations} leaf-samples without their CA in the bundle")
sys.exit(0 if on_new == count and violations == 0 and retired_at else 1)
