#!/usr/bin/env bash
# `make bench`: N ECDSA Certificates (default 1,000) on a CA Issuer, on a private local control
# plane (its own testenv, removed at the end, also on failure or Ctrl-C).
#
#   make bench ARGS="[--count N] [--concurrency 16] [--idle 30] [--backlog] [--issuer ca|vault|awspca]
#                    [--restart] [--unrelated] [--renewals [--renewing 1000] [--renewal-minutes 10]]
#                    [--profile] [--heap] [--rotate] [--rotation] [--debug]"
#
# Issuance (always): wall time from the first create (with --backlog: from the operator's
# start, every Certificate created before it) to all Ready, certs/s; CPU ms per certificate
# (utime+stime deltas from /proc) of the operator, kube-apiserver and etcd, each and summed; API
# reads (GET, LIST) and writes per certificate and every request by verb and resource (from
# the API server's apiserver_request_total, less the bench's own requests: see
# api_requests.py); the operator's peak RSS (VmHWM). The bench creates Certificates with 8
# API connections (certs.py) and follows them with one LIST and one WATCH. Then an idle
# window (--idle seconds, nothing due): writes, CPU and VmRSS each second.
# --backlog    create every Certificate before the operator starts: the operator's own pace.
# --restart    then SIGTERM the operator, start it again: time to /readyz, writes and requests
#              in its first minute (nothing is due: goal 0 writes), its VmHWM after that minute.
# --unrelated  then 300 unlabelled 1 MiB Opaque Secrets in another namespace: the operator's
#              VmRSS before and after (goal: < 5 MiB more).
# --renewals   --renewing N (default 1,000) of the Certificates have `duration: 5m` (the others
#              24h; --count defaults to 10,000): watch them renew for --renewal-minutes (default
#              10): lateness against status.renewalTime (p50/p99/max), renewals after the
#              previous notAfter, writes per renewal, operator CPU and RSS, renewals per second
#              (renewals.py). The idle window is skipped: renewals are always due. A 5m
#              certificate renews 150-170 s after its issuance (notBefore is backdated 30 s;
#              a third of the lifetime before notAfter, less up to 10% jitter), so a trial run
#              needs --renewal-minutes 3 or more to see renewals.
# --profile    run `perf record -g` (cpu-clock) on the operator during the issuance and print
#              the top symbols and the time grouped by what it is spent on (perf_groups.py).
#              Installs Debian's linux-perf if perf is missing. Release builds keep their
#              symbol table (Cargo strips only debug info), so symbols are named; inlined
#              functions count in their callers.
# --heap       run the operator under heaptrack (Debian's heaptrack, installed if missing) for
#              the issuance and the idle window, then print where its heap goes at the peak
#              (heaptrack_print --print-peaks). Allocations are slower under it: its CPU and
#              certs/s figures are not comparable; memory is.
# --issuer vault   sign through OpenBao (intermediate PKI mount, AppRole login): also reports
#              the logins and sign requests the operator made.
# --issuer awspca  sign through the AWS Private CA emulator (a root CA created with boto3 from
#              the emulator's virtualenv): IssueCertificate and GetCertificate calls, as the
#              operator counted them and as the emulator recorded them.
# --rotate     then the emergency rotation ceremony on the CA issuer (`certsmith rotate
#              --revoke`): time to done, revocations, API writes per certificate.
# --rotation   then rotate the CA issuer's root under the Ready leaves (rotation.py, default
#              rotationWindow and rate, trustPropagationDelay 10 s): time until every leaf is on
#              the new root and the old root retired, peak re-issue rate, writes per leaf, and
#              sampled checks that no leaf was ever without its CA in the TrustBundle.
# --debug      use the debug build (target/debug): no release build, CPU figures not comparable.
# Figures are printed, never asserted.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/bench"
count="" concurrency=16 idle=30 backlog=0 issuer=ca rotate=0 rotation=0 profile=release
restart=0 unrelated=0 renewals=0 renewing=1000 renewal_minutes=10 perf=0 heap=0
while [ $# -gt 0 ]; do
  case $1 in
    --count) count=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --backlog) backlog=1; shift ;;
    --issuer) issuer=$2; shift 2 ;;
    --rotate) rotate=1; shift ;;
    --rotation) rotation=1; shift ;;
    --restart) restart=1; shift ;;
    --unrelated) unrelated=1; shift ;;
    --renewals) renewals=1; shift ;;
    --renewing) renewing=$2; shift 2 ;;
    --renewal-minutes) renewal_minutes=$2; shift 2 ;;
    --profile) perf=1; shift ;;
    --heap) heap=1; shift ;;
    --debug) profile=debug; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$count" ]; then
  if [ $renewals = 1 ]; then count=10000; else count=1000; fi
fi
[ $renewals = 1 ] || renewing=0
if [ "$renewing" -gt "$count" ]; then echo "--renewing $renewing is more than --count $count" >&2; exit 2; fi

export CERTSMITH_TESTENV_STATE="$root/.testenv/bench-$$"
work=$(mktemp -d)
op_pid="" perf_pid="" heap_pid=""
cleanup() {
  if [ -n "$perf_pid" ]; then kill "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  if [ -n "$op_pid" ]; then kill "$op_pid" 2>/dev/null || true; wait "$op_pid" 2>/dev/null || true; fi
  if [ -n "$heap_pid" ]; then kill "$heap_pid" 2>/dev/null || true; wait "$heap_pid" 2>/dev/null || true; fi
  perf_pid="" op_pid="" heap_pid=""
  bash "$root/tests/testenv/testenv.sh" down || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ $perf = 1 ] && ! command -v perf >/dev/null; then
  echo "bench: installing perf (Debian's linux-perf)" >&2
  apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null
fi
if [ $heap = 1 ] && ! command -v heaptrack >/dev/null; then
  echo "bench: installing heaptrack (Debian's)" >&2
  apt-get update -qq && apt-get install -y -qq heaptrack >/dev/null
fi
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet --bin certsmith; fi
bin="$root/target/$profile/certsmith"
bash "$root/tests/testenv/testenv.sh" up
# shellcheck disable=SC1091
source "$CERTSMITH_TESTENV_STATE/env"
certs="$CERTSMITH_TESTENV_STATE/certs"
api=$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')
export CERTSMITH_CERTS=$certs KUBE_API=$api PYTHONPATH="$here" PYTHONDONTWRITEBYTECODE=1
clk_tck=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Measuring

now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }
# A snapshot of the API server's request counters ("VERB resource count" lines) into FILE.
snapshot() {
  curl -sf --cacert "$certs/ca.crt" --cert "$certs/admin.crt" --key "$certs/admin.key" "$api/metrics" |
    python3 "$here/api_requests.py" snapshot >"$1"
}
# The operator's writes between two snapshots, less the bench's own (OWN, optional).
writes_between() { python3 "$here/api_requests.py" writes "$@"; }
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks
cpu_ticks() { ticks_of "$op_pid"; }
component_pid() { cat "$CERTSMITH_TESTENV_STATE/pids/$1.pid"; }
kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$op_pid/status"; } # VmRSS, VmHWM
mib() { calc "f'{$1 / 1024:.1f}'"; }
# VmRSS each second for N seconds: "min mean max" in MiB.
rss_samples() {
  local i samples=()
  for ((i = 0; i < $1; i++)); do samples+=("$(kib VmRSS)"); sleep 1; done
  printf '%s\n' "${samples[@]}" | sort -n | awk '{s += $1; a[NR] = $1} END {printf "%.1f %.1f %.1f", a[1] / 1024, s / NR / 1024, a[NR] / 1024}'
}
operator_alive() { [ -n "$op_pid" ] && kill -0 "$op_pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$op_pid/stat")" != Z ]; }
die_operator() { echo "bench: the operator died" >&2; tail -n 20 "$work/operator.log" >&2; exit 1; }

metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_operator() {
  local wrap=()
  [ $heap = 1 ] && wrap=(heaptrack -o "$work/heap")
  "${wrap[@]}" "$bin" controller --concurrency "$concurrency" --log-format json \
    --issuer-ambient-credentials \
    --metrics-addr "127.0.0.1:$metrics_port" >>"$work/operator.log" 2>&1 &
  op_pid=$!
  if [ $heap = 1 ]; then # heaptrack runs the operator as its child: measure that one
    heap_pid=$op_pid op_pid=""
    until op_pid=$(pgrep -P "$heap_pid" -f "^$bin controller"); do sleep 0.05; done
  fi
}
stop_operator() {
  kill -TERM "$op_pid"; wait "$op_pid" 2>/dev/null || true; op_pid=""
  # heaptrack writes its file once the operator is gone
  if [ -n "$heap_pid" ]; then wait "$heap_pid" 2>/dev/null || true; heap_pid=""; fi
}
# Until TARGET Certificates are Ready (one watch); prints the Unix time it happened.
wait_ready() { python3 "$here/certs.py" ready "$1" "$op_pid" "$2" || die_operator; }
operator_metric() { # NAME FILTER: sum of the operator's own metric's samples matching FILTER
  curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk -v m="^$1" -v f="$2" '$0 ~ m && $0 ~ f {n += $NF} END {print n + 0}'
}

# ---------------------------------------------------------------------------------------------
# The issuers

kubectl apply --server-side -f "$root/crds/certsmith.yaml" >/dev/null
kubectl wait --for condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace bench >/dev/null
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

# ---------------------------------------------------------------------------------------------
# Phases

create_certificates() { python3 "$here/certs.py" create "$count" "$issuer_name" "$renewing" "$1"; }

start_profile() {
  perf record -e cpu-clock -F 499 -g -p "$op_pid" -o "$work/perf.data" >"$work/perf.log" 2>&1 &
  perf_pid=$!
}
stop_profile() {
  kill -TERM "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; perf_pid=""
  echo "profile (perf record -e cpu-clock -F 499 -g, operator during the issuance): top symbols, self time"
  perf report -i "$work/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' >"$work/perf.txt" || true
  head -n 15 "$work/perf.txt" | cut -c1-160
  echo "profile grouped by what the time is spent on:"
  python3 "$here/perf_groups.py" <"$work/perf.txt"
}

# Issue COUNT Certificates and report what it cost.
issuance() {
  local own="$work/own.issue" start applied end ticks_start=0 ap et ap_start et_start
  : >"$own"
  ap=$(component_pid kube-apiserver) et=$(component_pid etcd)
  if [ $backlog = 1 ]; then
    stop_operator
    local t=$(now); create_certificates "$own"; created_in=$(calc "$(now) - $t")
    snapshot "$work/issue.before"
    ap_start=$(ticks_of "$ap") et_start=$(ticks_of "$et")
    start=$(now)
    start_operator
    [ $perf = 1 ] && start_profile
  else
    snapshot "$work/issue.before"
    ap_start=$(ticks_of "$ap") et_start=$(ticks_of "$et")
    ticks_start=$(cpu_ticks)
    [ $perf = 1 ] && start_profile
    start=$(now)
    create_certificates "$own"
    created_in=$(calc "$(now) - $start")
  fi
  end=$(wait_ready $((count + 1)) "$own")
  local op_ticks=$(($(cpu_ticks) - ticks_start)) ap_ticks=$(($(ticks_of "$ap") - ap_start)) et_ticks=$(($(ticks_of "$et") - et_start))
  snapshot "$work/issue.after"
  peak_kib=$(kib VmHWM)
  python3 - <<PY
count, wall, t = $count, $end - $start, $clk_tck
print(f"certificates            {count} (ECDSA P-256, $issuer issuer, concurrency $concurrency, backlog $backlog, {$renewing} of them 5m)")
print(f"created in              {$created_in:.1f} s (8 API connections{', before the operator started' if $backlog else ''})")
print(f"start -> all Ready      {wall:.1f} s")
print(f"certificates per second {count / wall:.1f}")
op, ap, et = $op_ticks / t, $ap_ticks / t, $et_ticks / t
per = lambda s: f"{1000 * s / count:.2f} ms"
print(f"operator CPU per cert   {per(op)} ({op:.2f} s; utime+stime)")
print(f"control plane CPU/cert  kube-apiserver {per(ap)}, etcd {per(et)}, both {per(ap + et)}; "
      f"with the operator {per(op + ap + et)}{'' if $backlog else ' (includes creating the Certificates)'}")
print(f"operator peak RSS       {$peak_kib / 1024:.1f} MiB when all were Ready (VmHWM)")
PY
  python3 "$here/api_requests.py" report "$work/issue.before" "$work/issue.after" "$count" "$own"
  if [ "$issuer" = vault ]; then
    echo "Vault logins            $(operator_metric certsmith_backend_requests_total 'operation="login"')"
    echo "Vault sign requests     $(operator_metric certsmith_backend_requests_total 'operation="sign"')"
  fi
  if [ "$issuer" = awspca ]; then
    local recorded
    recorded=$(curl -sf "$AWS_ENDPOINT_URL_ACM_PCA/moto-api/recorder/download-recording" |
      grep -c '"X-Amz-Target": "ACMPrivateCA.IssueCertificate"' || true)
    echo "IssueCertificate calls  $(operator_metric certsmith_backend_requests_total 'operation="IssueCertificate"') (operator's count); emulator recorded $((recorded - 1)) (less the root)"
    echo "GetCertificate calls    $(operator_metric certsmith_backend_requests_total 'operation="GetCertificate"')"
  fi
  [ $perf = 1 ] && stop_profile
  return 0
}

# Nothing is due: the operator should neither write nor compute.
idle_window() {
  local ticks idle_start rss
  snapshot "$work/idle.before"
  ticks=$(cpu_ticks) idle_start=$(now)
  rss=$(rss_samples "$idle")
  local cpu secs
  cpu=$(calc "($(cpu_ticks) - $ticks) / $clk_tck") secs=$(calc "$(now) - $idle_start")
  snapshot "$work/idle.after"
  read -r min mean max <<<"$rss"
  echo "operator RSS when idle  $mean MiB mean, $min-$max MiB (VmRSS each second for $idle s); VmHWM $(mib "$(kib VmHWM)") MiB"
  echo "writes while idle       $(writes_between "$work/idle.before" "$work/idle.after") in $idle s"
  calc "f'CPU while idle          {$cpu:.2f} s in {$secs:.0f} s ({100 * $cpu / $secs:.2f}% of one core; resolution 1/$clk_tck s)'"
}

# Where the heap went at its peak (--heap): stop the operator, print heaptrack's peak
# consumers, start it again unwrapped for the phases after.
heap_report() {
  stop_operator
  echo "heap (heaptrack, issuance and idle window): peak consumers, by allocation site"
  # each peak with the first 8 frames of its backtrace, without file lines
  heaptrack_print -f "$work"/heap*.zst --print-peaks 1 --print-allocators 0 --print-leaks 0 \
    --print-temporary 0 --peak-limit 20 --sub-peak-limit 2 2>/dev/null |
    awk '/^peak (heap memory|RSS)/ || /consumed over/ {print; n = 0; next} /^ +(in|at) / {next}
         /^    / && n < 8 {print; n++}' |
    cut -c1-160 || true
  heap=0
  start_operator
}

# Stop the operator, start it again: how long until ready, and is it quiet after?
restart_phase() {
  local t0 stopped ready_at own="$work/own.restart"
  : >"$own"
  t0=$(now); stop_operator; stopped=$(calc "f'{$(now) - $t0:.2f}'")
  snapshot "$work/restart.before"
  t0=$(now)
  start_operator
  until curl -sf "http://127.0.0.1:$metrics_port/readyz" >/dev/null 2>&1; do
    operator_alive || die_operator
    sleep 0.05
  done
  ready_at=$(calc "$(now) - $t0")
  local hwm_ready
  hwm_ready=$(kib VmHWM)
  sleep "$(calc "max(0, 60 - ($(now) - $t0))")"
  snapshot "$work/restart.after"
  echo "restart                 SIGTERM to exit $stopped s; start to /readyz OK $(calc "f'{$ready_at:.2f}'") s"
  echo "writes in first minute  $(writes_between "$work/restart.before" "$work/restart.after" "$own") (nothing was due)"
  echo "RSS after restart       VmHWM $(mib "$hwm_ready") MiB at /readyz, $(mib "$(kib VmHWM)") MiB after the first minute; VmRSS $(mib "$(kib VmRSS)") MiB; CPU $(calc "f'{$(cpu_ticks) / $clk_tck:.2f}'") s"
  python3 "$here/api_requests.py" report "$work/restart.before" "$work/restart.after" 1 "$own" restart
}

# Objects the operator has no business with must not cost it memory.
unrelated_phase() {
  local before after own="$work/own.unrelated"
  : >"$own"
  kubectl create namespace unrelated >/dev/null
  before=$(rss_samples 5)
  python3 "$here/certs.py" opaque 300 1048576 unrelated "$own"
  sleep 10
  after=$(rss_samples 5)
  read -r _ b _ <<<"$before"
  read -r _ a _ <<<"$after"
  echo "unrelated Secrets       300 Opaque of 1 MiB in namespace unrelated: operator VmRSS $b MiB before, $a MiB after (5 s means), difference $(calc "f'{$a - $b:+.1f}'") MiB; VmHWM $(mib "$(kib VmHWM)") MiB"
}

renewals_phase() {
  local own="$work/own.renewals"
  : >"$own"
  snapshot "$work/renewals.before"
  echo "renewal window          $renewal_minutes min, $renewing Certificates of duration 5m among $count"
  python3 "$here/renewals.py" "$op_pid" $((renewal_minutes * 60)) "$own" "$work/renewals.count"
  snapshot "$work/renewals.after"
  local n w
  n=$(cat "$work/renewals.count") w=$(writes_between "$work/renewals.before" "$work/renewals.after" "$own")
  echo "writes per renewal      $(calc "f'{$w / max($n, 1):.2f}'") ($w writes)"
}

# The emergency rotation ceremony on the CA issuer, at the default rate, revoking every
# superseded certificate. Writes counted: everything the operator writes for it.
rotate_phase() {
  local before after t0 took revoked in_crl status
  snapshot "$work/rotate.before"
  t0=$(now)
  "$bin" rotate --issuer ca -n bench --revoke --timeout 1h >"$work/rotate.out" 2>"$work/rotate.err"
  took=$(calc "$(now) - $t0")
  snapshot "$work/rotate.after"
  revoked=$(operator_metric certsmith_revocations_total 'result="success"')
  in_crl=$(kubectl get issuer ca -n bench -o jsonpath='{.status.crl.revokedCertificates}')
  status=$(kubectl get issuer ca -n bench -o jsonpath='{.status.emergencyRotation}')
  # Less the CLI's own patch of the issuer's annotations.
  local writes=$(($(writes_between "$work/rotate.before" "$work/rotate.after") - 1))
  echo "emergency rotation      $count certificates at the default rate, --revoke: done in $(calc "f'{$took:.1f}'") s ($(calc "f'{$count / $took:.1f}'") certs/s)"
  echo "revocations             $revoked recorded at the CA ($in_crl serials in its CRL)"
  echo "rotation API writes     $(calc "f'{$writes / $count:.2f}'") per certificate ($writes writes: annotations, Secrets, status, Events, CRL)"
  echo "rotation status         $status"
  cat "$work/rotate.out"
}

rotation_phase() {
  local moto_bin
  moto_bin=$(bash "$root/tests/testenv/moto/setup.sh" 2>/dev/null | tail -n 1)
  snapshot "$work/rotation.before"
  "$moto_bin/python" "$here/rotation.py" "$count" "$bin"
  snapshot "$work/rotation.after"
  local w
  w=$(writes_between "$work/rotation.before" "$work/rotation.after")
  echo "rotation: API writes per leaf $(calc "f'{$w / $count:.2f}'") ($w writes: Secrets, status, Events, the root, the issuer, the bundle; the bench's own kubectl label/apply of the TrustBundle included)"
}

issuance
if [ $renewals = 0 ]; then idle_window; else echo "idle window             skipped (--renewals: renewals are always due)"; fi
[ $heap = 1 ] && heap_report
[ $restart = 1 ] && restart_phase
[ $unrelated = 1 ] && unrelated_phase
[ $renewals = 1 ] && renewals_phase
[ $rotate = 1 ] && [ "$issuer" = ca ] && rotate_phase
[ $rotation = 1 ] && rotation_phase
exit 0
