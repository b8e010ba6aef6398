#!/usr/bin/env bash
# `make bench`: N ECDSA Certificates (default 1,000) on a CA Issuer, on a private local
# control plane. Reports wall time from the first apply to all Ready, certificates per
# second, the operator's peak RSS, API writes per issued certificate (from the API server's
# own request counters), and then, over an idle window with nothing due, the writes, the CPU
# time (utime+stime from /proc/<pid>/stat) and the steady-state RSS (VmRSS sampled each
# second) of the operator. Also the control plane's side: kube-apiserver + etcd CPU time over
# the same window, and every API request per certificate by verb and resource (reads too).
#   make bench ARGS="--count 1000 --concurrency 16 --idle 30 [--backlog] [--issuer ca|vault|awspca]"
# --issuer vault signs through OpenBao (intermediate PKI mount, AppRole login) and also
# reports how many logins and sign requests the operator made.
# --issuer awspca signs through the AWS Private CA emulator (a root CA created and activated
# with boto3 from the emulator's own virtualenv) and reports the IssueCertificate and
# GetCertificate calls, as the operator counted them and as the emulator recorded them.
# --backlog creates every Certificate before the operator starts, which measures the
# operator's own throughput instead of the pace at which kubectl can create objects.
# --rotation then rotates the CA issuer's root under the Ready leaves (tests/bench/rotation.py:
# default rotationWindow and rate limit, trustPropagationDelay 10 s): time until every leaf is
# on the new root and the old root is retired, peak re-issue rate, API writes per leaf, and
# sampled checks that no leaf was ever without its CA in the TrustBundle.
# --debug uses the debug build (no release build needed; CPU figures are then not comparable).
# --rotate then runs the emergency rotation ceremony on the CA issuer (`certsmith rotate
# --revoke` at the default rate) and reports the time to done, the revocations and the API
# writes per certificate it cost (Secrets, status, Events, the Certificates' annotations, the
# CRL ConfigMap). --debug uses the debug build (target/debug) instead of a release build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
count=1000 concurrency=16 idle=30 backlog=0 issuer=ca rotate=0 rotation=0 profile=release
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --backlog) backlog=1; shift ;;
    --issuer) issuer=$2; shift 2 ;;
    --rotate) rotate=1; shift ;;
    --rotation) rotation=1; shift ;;
    --debug) profile=debug; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

export CERTSMITH_TESTENV_STATE="$root/.testenv/bench-$$"
work=$(mktemp -d)
op_pid=""
cleanup() {
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null
  bash "$root/tests/testenv/testenv.sh" down || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet --bin certsmith; fi
bin="$root/target/$profile/certsmith"
bash "$root/tests/testenv/testenv.sh" up
# shellcheck disable=SC1091
source "$CERTSMITH_TESTENV_STATE/env"
certs="$CERTSMITH_TESTENV_STATE/certs"
api=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')

# Writes by the operator: Secrets, Certificate and Issuer status, Events. The benchmark's own
# writes (creating Certificates) are the only other writes and are excluded.
operator_writes() {
  curl -sf --cacert "$certs/ca.crt" --cert "$certs/admin.crt" --key "$certs/admin.key" "$api/metrics" | python3 -c '
import re, sys
total = 0
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
    if labels.get("verb") not in ("POST", "PUT", "PATCH", "APPLY", "DELETE"):
        continue
    r, sub = labels.get("resource"), labels.get("subresource", "")
    if r in ("secrets", "events") or (r in ("certificates", "issuers") and sub == "status"):
        total += int(float(line.rsplit(" ", 1)[1]))
print(total)'
}

# Every request the API server has served, as "VERB resource[/subresource] count" lines (from
# its own apiserver_request_total), to count what an issuance costs it, reads included.
api_requests() {
  curl -sf --cacert "$certs/ca.crt" --cert "$certs/admin.crt" --key "$certs/admin.key" "$api/metrics" | python3 -c '
import re, sys, collections
counts = collections.Counter()
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
    resource = labels.get("resource", "")
    if labels.get("subresource"):
        resource += "/" + labels["subresource"]
    counts[(labels.get("verb", ""), resource or "-")] += int(float(line.rsplit(" ", 1)[1]))
for (verb, resource), n in sorted(counts.items()):
    print(verb, resource, n)'
}
# CPU time (utime+stime, clock ticks) of the control plane the operator talks to.
control_plane_ticks() {
  local total=0 pid c
  for c in kube-apiserver etcd; do
    pid=$(cat "$CERTSMITH_TESTENV_STATE/pids/$c.pid")
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

kubectl apply --server-side -f "$root/crds/certsmith.yaml" >/dev/null
kubectl wait --for condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace bench >/dev/null
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_operator() {
  "$bin" controller --concurrency "$concurrency" --log-format json \
    --issuer-ambient-credentials \
    --metrics-addr "127.0.0.1:$metrics_port" >>"$work/operator.log" 2>&1 &
  op_pid=$!
}
start_operator
kubectl apply -n bench -f - >/dev/null <<'YAML'
apiVersion: certsmith.dev/v1alpha1
kind: Issuer
metadata: {name: selfsigned}
spec: {selfSigned: {}}
---
apiVersion: certsmith.dev/v1alpha1
kind: Certificate
metadata: {name: root}
spec: {secretName: root-ca, issuerRef: {name: selfsigned}, commonName: bench root, isCA: true}
---
apiVersion: certsmith.dev/v1alpha1
kind: Issuer
metadata: {name: ca}
spec: {ca: {secretName: root-ca}}
YAML
[ $rotation = 1 ] && kubectl patch issuer -n bench ca --type merge \
  -p '{"spec":{"ca":{"trustPropagationDelay":"10s"}}}' >/dev/null
kubectl wait -n bench --for condition=Ready=True certificate/root --timeout=60s >/dev/null
kubectl wait -n bench --for condition=Ready=True issuer/ca --timeout=60s >/dev/null

bao() { # METHOD PATH [JSON]
  curl -sf -X "$1" -H "X-Vault-Token: $VAULT_TOKEN" ${3:+-d "$3"} "$VAULT_ADDR/v1/$2"
}
if [ "$issuer" = vault ]; then
  # The same PKI the integration tests sign with (root, intermediate, role, policy).
  pki=$(bash "$root/tests/testenv/openbao/pki.sh" bench '{"allowed_domains":"bench.svc","no_store":true}')
  sign_path=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sign_path"])' <<<"$pki")
  policy=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"])' <<<"$pki")
  bao POST sys/auth/approle '{"type":"approle"}' >/dev/null
  bao POST auth/approle/role/bench "{\"token_policies\":[\"$policy\"],\"token_ttl\":\"1h\"}" >/dev/null
  role_id=$(bao GET auth/approle/role/bench/role-id | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["role_id"])')
  secret_id=$(bao POST auth/approle/role/bench/secret-id '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["secret_id"])')
  kubectl create secret generic -n bench approle --from-literal=secret-id="$secret_id" >/dev/null
  kubectl apply -n bench -f - >/dev/null <<YAML
apiVersion: certsmith.dev/v1alpha1
kind: Issuer
metadata: {name: vault}
spec:
  vault:
    server: $VAULT_ADDR
    path: $sign_path
    auth: {appRole: {roleId: "$role_id", secretRef: {name: approle, key: secret-id}}}
YAML
  kubectl wait -n bench --for condition=Ready=True issuer/vault --timeout=60s >/dev/null
fi
if [ "$issuer" = awspca ]; then
  moto_bin=$(bash "$root/tests/testenv/moto/setup.sh" 2>/dev/null | tail -n 1)
  curl -sf -X POST "$AWS_ENDPOINT_URL_ACM_PCA/moto-api/recorder/start-recording" >/dev/null
  ca_arn=$("$moto_bin/python" - <<'PY'
import boto3
pca = boto3.client("acm-pca")
arn = pca.create_certificate_authority(
    CertificateAuthorityConfiguration={"KeyAlgorithm": "EC_prime256v1", "SigningAlgorithm": "SHA256WITHECDSA",
                                       "Subject": {"CommonName": "bench PCA root"}},
    CertificateAuthorityType="ROOT")["CertificateAuthorityArn"]
csr = pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
root_arn = pca.issue_certificate(CertificateAuthorityArn=arn, Csr=csr, SigningAlgorithm="SHA256WITHECDSA",
                                 TemplateArn="arn:aws:acm-pca:::template/RootCACertificate/V1",
                                 Validity={"Value": 3650, "Type": "DAYS"})["CertificateArn"]
root = pca.get_certificate(CertificateAuthorityArn=arn, CertificateArn=root_arn)["Certificate"]
pca.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=root.encode())
print(arn)
PY
)
  kubectl apply -n bench -f - >/dev/null <<YAML
apiVersion: certsmith.dev/v1alpha1
kind: Issuer
metadata: {name: awspca}
spec:
  awsPCA: {arn: "$ca_arn"}
YAML
  kubectl wait -n bench --for condition=Ready=True issuer/awspca --timeout=60s >/dev/null
fi
case $issuer in vault) issuer_name=vault ;; awspca) issuer_name=awspca ;; *) issuer_name=ca ;; esac

python3 - "$count" "$issuer_name" >"$work/certs.yaml" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"""---
apiVersion: certsmith.dev/v1alpha1
kind: Certificate
metadata: {{name: agent-{i}}}
spec:
  secretName: agent-{i}-tls
  issuerRef: {{name: {sys.argv[2]}}}
  dnsNames: [agent-{i}.bench.svc]
  uris: [spiffe://cluster.local/ns/bench/sa/agent-{i}]
  duration: 24h""")
PY

ready_count() {
  kubectl get certificates -n bench -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$op_pid/stat"; } # utime + stime, in clock ticks
if [ $backlog = 1 ]; then
  kill "$op_pid"; wait "$op_pid" 2>/dev/null || true
  kubectl apply -n bench -f "$work/certs.yaml" >/dev/null
  writes_before=$(operator_writes)
  api_requests >"$work/requests.before"
  cp_ticks_start=$(control_plane_ticks)
  start=$(date +%s.%N)
  start_operator
  ticks_start=0 # a new process
  applied=$start
else
  writes_before=$(operator_writes)
  api_requests >"$work/requests.before"
  cp_ticks_start=$(control_plane_ticks)
  ticks_start=$(cpu_ticks)
  start=$(date +%s.%N)
  kubectl apply -n bench -f "$work/certs.yaml" >/dev/null
  applied=$(date +%s.%N)
fi
target=$((count + 1))
until [ "$(ready_count)" -ge "$target" ]; do
  sleep 0.5
  if ! kill -0 "$op_pid" 2>/dev/null; then echo "operator died" >&2; tail -n 20 "$work/operator.log" >&2; exit 1; fi
done
end=$(date +%s.%N)
ticks_ready=$(cpu_ticks)
cp_ticks_ready=$(control_plane_ticks)
writes_after=$(operator_writes)
api_requests >"$work/requests.after"
# Requests per certificate by verb and resource, largest first (the benchmark's own polling of
# Certificates, and in non-backlog mode its kubectl apply, are among them: LIST/GET/POST
# certificates).
requests_per_cert=$(python3 - "$work/requests.before" "$work/requests.after" "$count" <<'PY'
import sys
def load(path):
    out = {}
    for line in open(path):
        verb, resource, n = line.split()
        out[(verb, resource)] = int(n)
    return out
before, after, count = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
total = sum(delta.values())
rows = sorted(delta.items(), key=lambda kv: -kv[1])
print(f"{total / count:.2f} in all; " + ", ".join(f"{v} {r} {n / count:.2f}" for (v, r), n in rows[:10]))
PY
)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
backend_count() { # OPERATION
  curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk -v op="$1" '$0 ~ "^certsmith_backend_requests_total" && $0 ~ "operation=\""op"\"" {n += $NF} END {print n + 0}'
}
logins=$(backend_count login)
signs=$(backend_count sign)
issue_calls=$(backend_count IssueCertificate)
get_calls=$(backend_count GetCertificate)
emulator_issued=0
if [ "$issuer" = awspca ]; then
  emulator_issued=$(curl -sf "$AWS_ENDPOINT_URL_ACM_PCA/moto-api/recorder/download-recording" |
    grep -c '"X-Amz-Target": "ACMPrivateCA.IssueCertificate"' || true)
  emulator_issued=$((emulator_issued - 1)) # the root certificate issued above
fi
rss_now() { awk '/VmRSS/ {print $2}' "/proc/$op_pid/status"; }   # KiB
# The idle window: nothing is due, so the operator should neither write nor compute. Its RSS
# is sampled every second (steady state: min, mean, max) and its CPU time read at both ends.
ticks_before_idle=$(cpu_ticks)
idle_start=$(date +%s.%N)
rss_samples=()
for ((i = 0; i < idle; i++)); do
  rss_samples+=("$(rss_now)")
  sleep 1
done
ticks_after_idle=$(cpu_ticks)
idle_secs=$(python3 -c "import time; print(time.time() - $idle_start)")
writes_idle=$(operator_writes)
rss_hwm_end_kib=$(awk '/VmHWM/ {print $2}' "/proc/$op_pid/status")
rss_idle=$(printf '%s\n' "${rss_samples[@]}" | sort -n | awk '{s += $1; a[NR] = $1} END {printf "%.1f %.1f %.1f %d", a[1] / 1024, s / NR / 1024, a[NR] / 1024, NR}')
read -r rss_idle_min rss_idle_mean rss_idle_max rss_idle_n <<<"$rss_idle"

python3 - <<PY
count = $count
wall = $end - $start
print(f"certificates            {count} (ECDSA P-256, $issuer issuer, concurrency $concurrency, backlog $backlog)")
print(f"kubectl apply took      {$applied - $start:.1f} s")
print(f"start -> all Ready       {wall:.1f} s")
print(f"certificates per second {count / wall:.1f}")
print(f"operator peak RSS       {$rss_kib / 1024:.1f} MiB when all were Ready, {$rss_hwm_end_kib / 1024:.1f} MiB after the idle window (VmHWM)")
print(f"operator RSS when idle  {$rss_idle_mean} MiB mean, {$rss_idle_min}-{$rss_idle_max} MiB ($rss_idle_n samples of VmRSS, 1 s apart)")
print(f"API writes per cert     {($writes_after - $writes_before) / count:.2f} ({$writes_after - $writes_before} writes: Secrets, status, Events)")
print(f"writes while idle       {$writes_idle - $writes_after} in $idle s")
issue_cpu = ($ticks_ready - $ticks_start) / $(getconf CLK_TCK)
print(f"CPU to issue them       {issue_cpu:.2f} s ({1000 * issue_cpu / count:.1f} ms per certificate; utime+stime)")
cp_cpu = ($cp_ticks_ready - $cp_ticks_start) / $(getconf CLK_TCK)
print(f"control plane CPU       {cp_cpu:.2f} s ({1000 * cp_cpu / count:.1f} ms per certificate; kube-apiserver + etcd, same window)")
print("API requests per cert   $requests_per_cert")
idle_cpu = ($ticks_after_idle - $ticks_before_idle) / $(getconf CLK_TCK)
idle_secs = $idle_secs
print(f"CPU while idle          {idle_cpu:.2f} s in {idle_secs:.0f} s ({100 * idle_cpu / idle_secs:.2f}% of one core; utime+stime, resolution 1/$(getconf CLK_TCK) s)")
if "$issuer" == "vault":
    print(f"Vault logins            $logins")
    print(f"Vault sign requests     $signs")
if "$issuer" == "awspca":
    print(f"IssueCertificate calls  $issue_calls (operator's count); emulator recorded $emulator_issued")
    print(f"GetCertificate calls    $get_calls")
PY

# The emergency rotation ceremony on the CA issuer, at the default rate, revoking every
# superseded certificate. Writes counted: everything the operator writes for it.
rotation_writes() {
  curl -sf --cacert "$certs/ca.crt" --cert "$certs/admin.crt" --key "$certs/admin.key" "$api/metrics" | python3 -c '
import re, sys
total = 0
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
    if labels.get("verb") not in ("POST", "PUT", "PATCH", "APPLY", "DELETE"):
        continue
    r, sub = labels.get("resource"), labels.get("subresource", "")
    if r in ("secrets", "events", "configmaps", "certificates") or (r == "issuers" and sub == "status"):
        total += int(float(line.rsplit(" ", 1)[1]))
print(total)'
}
if [ $rotate = 1 ] && [ "$issuer" = ca ]; then
  rot_before=$(rotation_writes)
  rot_start=$(date +%s.%N)
  "$bin" rotate --issuer ca -n bench --revoke --timeout 1h >"$work/rotate.out" 2>"$work/rotate.err"
  rot_end=$(date +%s.%N)
  rot_after=$(rotation_writes)
  revoked=$(curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk '/^certsmith_revocations_total/ && /result="success"/ {n += $NF} END {print n + 0}')
  in_crl=$(kubectl get issuer ca -n bench -o jsonpath='{.status.crl.revokedCertificates}')
  status=$(kubectl get issuer ca -n bench -o jsonpath='{.status.emergencyRotation}')
  python3 - <<PY
count = $count
took = $rot_end - $rot_start
writes = $rot_after - $rot_before - 1  # less the CLI's own patch of the issuer's annotations
print(f"emergency rotation      {count} certificates at the default rate, --revoke: done in {took:.1f} s ({count / took:.1f} certs/s)")
print(f"revocations             $revoked recorded at the CA ($in_crl serials in its CRL)")
print(f"rotation API writes     {writes / count:.2f} per certificate ({writes} writes: annotations, Secrets, status, Events, CRL)")
print("""rotation status         $status""")
PY
  cat "$work/rotate.out"
fi
if [ $rotation = 1 ]; then
  moto_bin=$(bash "$root/tests/testenv/moto/setup.sh" 2>/dev/null | tail -n 1)
  writes_before_rotation=$(operator_writes)
  "$moto_bin/python" "$root/tests/bench/rotation.py" "$count" "$bin"
  writes_after_rotation=$(operator_writes)
  python3 -c "print(f'rotation: API writes per leaf {($writes_after_rotation - $writes_before_rotation) / $count:.2f} ({$writes_after_rotation - $writes_before_rotation} writes: Secrets, status, Events, the root and the issuer)')"
fi
