#!/usr/bin/env bash
# The local test environment: a real control plane (etcd, kube-apiserver,
# kube-controller-manager), OpenBao in dev mode (the Vault API) and moto (the AWS Private CA
# emulator), each on its own 127.0.0.1 port, with certificates generated for this environment.
#
#   testenv.sh up       start everything (idempotent); builds missing binaries first
#   testenv.sh env      print the env file (export lines) of a running environment
#   testenv.sh status   each component: PID, alive or not, port(s)
#   testenv.sh down     stop exactly the processes recorded in the state folder, remove it
#
# State (certs/, logs/, pids/, ports/, etcd/, kubeconfig, env) lives in
# $CERTSMITH_TESTENV_STATE, default <repo>/.testenv/default. Environments with different state
# folders run side by side: no server uses a default port or listens beyond 127.0.0.1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# Absolute, because the kubeconfig and env file name files in it.
state=$(realpath -m -- "${CERTSMITH_TESTENV_STATE:-$root/.testenv/default}")
# Start order; `down` stops etcd's clients before etcd.
components=(etcd kube-apiserver kube-controller-manager openbao moto)
# Marks a folder as made by this script: `down` deletes no folder without it.
marker=.certsmith-testenv
sa_issuer=https://kubernetes.default.svc.cluster.local
# The node the tests act as (tests/integration/pod_certificates.rs): a kubelet's client certificate
# for it is issued with the environment's other certificates.
node_name=certsmith-testenv-node

log() { echo "testenv: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Processes

pid_of() { cat "$state/pids/$1.pid" 2>/dev/null || true; }
port_of() { local p; p=$(cat "$state/ports/$1" 2>/dev/null) || return 0; echo "${p%% *}"; }

# A process's state letter (R, S, T for stopped, Z for zombie...); empty if there is none.
proc_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) } # the command name (field 2) may hold spaces; what follows does not
  echo "${stat%% *}"
}

# Start time of a live (non-zombie) process, in clock ticks since boot; empty if there is none.
# It is recorded next to each PID, so that a PID the kernel has since given to another
# process (after a crash or a reboot) is never taken for ours, let alone signalled.
proc_start() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) } # the command name (field 2) may hold spaces; what follows does not
  # shellcheck disable=SC2086
  set -- $stat # $1 is now field 3 (state), ${20} field 22 (starttime)
  [ "$1" != Z ] && echo "${20}"
  return 0
}

# True while the component's recorded process is the very one we started.
alive() {
  local pid recorded now
  pid=$(pid_of "$1")
  [ -n "$pid" ] || return 1
  recorded=$(cat "$state/pids/$1.start" 2>/dev/null) || return 1
  now=$(proc_start "$pid")
  [ -n "$now" ] && [ "$now" = "$recorded" ]
}

# Run a component in the background in a session, hence a process group, of its own: `down`
# signals the group (the server and anything it spawned), and a Ctrl-C in the caller's
# terminal does not reach it. In a non-interactive shell the background child is no group
# leader, so setsid(1) calls setsid(2) and execs in place: $! is the server's PID and PGID.
start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/pids/$name.pid"
  # Recorded at once: the start time is set at fork and survives the exec.
  proc_start $! >"$state/pids/$name.start"
}

# Poll `check...` until it succeeds. When the component exits or `timeout` seconds pass,
# report it with its log's tail, set $failed and return 1.
wait_ready() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name" || ((SECONDS >= deadline)); then
      failed=$name
      log "$name failed to start"
      tail -n 40 "$state/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

# SIGTERM the given components' process groups together, wait up to 10 s, SIGKILL the rest.
stop() {
  local name pid signalled=()
  for name in "$@"; do
    pid=$(pid_of "$name")
    [ -n "$pid" ] || continue
    # Signal the group while its leader is ours, or when no process has its PID any more
    # (then only leftover members of our group can hold that PGID: Linux does not reuse a
    # PID that is still some group's ID). A recycled PID is left alone.
    if alive "$name" || [ ! -e "/proc/$pid" ]; then
      kill -TERM -- "-$pid" 2>/dev/null || true
      # A test may have left it paused (SIGSTOP, an outage drill): let it act on the TERM.
      kill -CONT -- "-$pid" 2>/dev/null || true
      signalled+=("$name")
    fi
  done
  local deadline=$((SECONDS + 10)) running
  while ((SECONDS < deadline)); do
    running=0
    for name in "${signalled[@]}"; do alive "$name" && running=1; done
    ((running)) || break
    sleep 0.1
  done
  for name in "${signalled[@]}"; do
    # Also sweeps any children that outlived their leader.
    kill -KILL -- "-$(pid_of "$name")" 2>/dev/null || true
  done
  for name in "$@"; do rm -f "$state/pids/$name.pid" "$state/pids/$name.start"; done
}

stop_all() {
  stop moto openbao kube-controller-manager kube-apiserver
  stop etcd
}

# Stop what the state folder records and delete the folder.
teardown() {
  [ -e "$state" ] || return 0
  if [ ! -e "$state/$marker" ] && [ -n "$(ls -A "$state" 2>/dev/null)" ]; then
    die "$state was not made by testenv.sh (no $marker): not touching it"
  fi
  stop_all
  rm -rf -- "$state"
}

is_up() {
  local name
  [ -e "$state/$marker" ] && [ -f "$state/env" ] || return 1
  for name in "${components[@]}"; do alive "$name" || return 1; done
}

# ---------------------------------------------------------------------------------------------
# Preparation

# Binaries, built on first use and cached by version; each script prints its bin dir last.
build_all() {
  kube_bin=$(bash "$here/kubernetes/build.sh" | tail -n 1)
  bao_bin=$(bash "$here/openbao/build.sh" | tail -n 1)
  moto_bin=$(bash "$here/moto/setup.sh" | tail -n 1)
  local b
  for b in "$kube_bin"/{etcd,kube-apiserver,kube-controller-manager,kubectl} "$bao_bin/bao" \
    "$moto_bin/moto_server"; do
    [ -x "$b" ] || die "missing $b after the build scripts ran"
  done
}

# Print free 127.0.0.1 TCP ports, one per argument ("one", or "pair" for a port whose
# successor is free too: OpenBao also listens on port+1 for cluster traffic). They are picked
# at random BELOW the kernel's ephemeral range: bind(0) and outgoing connections (plenty,
# between the apiserver and etcd) take ports from that range, so one of them could grab a
# port from it between this check and the server's own bind.
free_ports() {
  python3 - "$@" <<'PY'
import random, socket, sys
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
top = lo if lo > 12000 else 65536
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
taken, out = set(), []
for want in sys.argv[1:]:
    span = range(2) if want == "pair" else range(1)
    while True:
        p = random.randrange(10000, top - 1)
        if all(p + i not in taken and free(p + i) for i in span):
            break
    taken.update(p + i for i in span)
    out.append(str(p))
print(" ".join(out))
PY
}

# Issue a leaf certificate from the environment's CA: name subject extensions...
issue() {
  local d=$state/certs name=$1 subject=$2
  shift 2
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/$name.key"
  openssl req -new -key "$d/$name.key" -subj "$subject" -out "$d/$name.csr"
  printf '%s\n' "$@" >"$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -CAserial "$d/ca.srl" -days 30 -sha256 -extfile "$d/$name.ext" \
    -out "$d/$name.crt" 2>/dev/null
}

gen_certs() {
  local d=$state/certs
  mkdir -p "$d"
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key"
  openssl req -x509 -new -key "$d/ca.key" -subj "/CN=certsmith-testenv-ca" -days 30 -sha256 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$d/ca.crt"
  # 10.0.0.1: the `kubernetes` Service's ClusterIP, first of --service-cluster-ip-range.
  issue apiserver /CN=kube-apiserver keyUsage=critical,digitalSignature \
    extendedKeyUsage=serverAuth \
    subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
  issue admin /O=system:masters/CN=certsmith-admin keyUsage=critical,digitalSignature \
    extendedKeyUsage=clientAuth
  # With --use-service-account-credentials=false every controller acts as this user. The
  # bootstrap role system:kube-controller-manager only covers what the controllers need to
  # hand out per-controller ServiceAccounts, not e.g. the namespace controller's deletes, so
  # on this throwaway control plane it is also in system:masters.
  issue controller-manager /O=system:masters/CN=system:kube-controller-manager \
    keyUsage=critical,digitalSignature extendedKeyUsage=clientAuth
  # A kubelet's identity, for tests that act as a node (PodCertificateRequests): the Node
  # authorizer and NodeRestriction admission judge it as they judge a real kubelet.
  issue node "/O=system:nodes/CN=system:node:$node_name" keyUsage=critical,digitalSignature \
    extendedKeyUsage=clientAuth
  # ServiceAccount token signing (apiserver, controller-manager) and verification.
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

# A kubeconfig for one of the client certificates: file user
write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: certsmith-testenv
  cluster:
    server: https://127.0.0.1:$(port_of kube-apiserver)
    certificate-authority: $state/certs/ca.crt
users:
- name: $2
  user:
    client-certificate: $state/certs/$2.crt
    client-key: $state/certs/$2.key
contexts:
- name: certsmith-testenv
  context:
    cluster: certsmith-testenv
    user: $2
current-context: certsmith-testenv
EOF
}

# ---------------------------------------------------------------------------------------------
# The components. Each start_* returns non-zero (after reporting) if it does not come up.

start_etcd() {
  local client=$1 peer=$2 metrics=$3
  echo "$client (peer $peer, metrics $metrics)" >"$state/ports/etcd"
  # Every URL given explicitly: the defaults (2379, 2380) would clash between environments.
  start etcd "$kube_bin/etcd" --name=testenv --data-dir="$state/etcd" \
    --listen-client-urls="http://127.0.0.1:$client" --advertise-client-urls="http://127.0.0.1:$client" \
    --listen-peer-urls="http://127.0.0.1:$peer" --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="testenv=http://127.0.0.1:$peer" \
    --listen-metrics-urls="http://127.0.0.1:$metrics" \
    --unsafe-no-fsync
  wait_ready etcd 60 curl -sf "http://127.0.0.1:$client/health"
}

start_apiserver() {
  local port=$1 c=$state/certs
  echo "$port" >"$state/ports/kube-apiserver"
  start kube-apiserver "$kube_bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$(port_of etcd)" \
    --bind-address=127.0.0.1 --secure-port="$port" --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none --cert-dir="$state/apiserver" \
    --tls-cert-file="$c/apiserver.crt" --tls-private-key-file="$c/apiserver.key" \
    --client-ca-file="$c/ca.crt" --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer="$sa_issuer" \
    --service-account-key-file="$c/sa.pub" --service-account-signing-key-file="$c/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --runtime-config=certificates.k8s.io/v1beta1/clustertrustbundles=true,certificates.k8s.io/v1beta1/podcertificaterequests=true \
    --feature-gates=ClusterTrustBundle=true,PodCertificateRequest=true
  wait_ready kube-apiserver 90 api_get /readyz
}

# GET a path on the API server as the admin.
api_get() {
  curl -sf --cacert "$state/certs/ca.crt" --cert "$state/certs/admin.crt" \
    --key "$state/certs/admin.key" "https://127.0.0.1:$(port_of kube-apiserver)$1"
}

start_controller_manager() {
  echo "-" >"$state/ports/kube-controller-manager"
  start kube-controller-manager "$kube_bin/kube-controller-manager" \
    --kubeconfig="$state/controller-manager.kubeconfig" \
    --controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller \
    --leader-elect=false --secure-port=0 --use-service-account-credentials=false \
    --root-ca-file="$state/certs/ca.crt" --service-account-private-key-file="$state/certs/sa.key"
  # The serviceaccount controller creating `default` shows the controllers are running.
  wait_ready kube-controller-manager 60 api_get /api/v1/namespaces/default/serviceaccounts/default
}

start_openbao() {
  local port=$1 token=$2
  echo "$port (cluster $((port + 1)))" >"$state/ports/openbao"
  # Dev mode: in memory, unsealed, with our root token. -dev-no-store-token and HOME keep the
  # token out of ~/.vault-token; another environment's VAULT_*/BAO_* must not leak in.
  start openbao env -u VAULT_ADDR -u VAULT_TOKEN -u BAO_ADDR -u BAO_TOKEN HOME="$state" \
    "$bao_bin/bao" server -dev -dev-root-token-id="$token" \
    -dev-listen-address="127.0.0.1:$port" -dev-no-store-token
  wait_ready openbao 60 curl -sf "http://127.0.0.1:$port/v1/sys/health"
}

start_moto() {
  local port=$1
  echo "$port" >"$state/ports/moto"
  # Requests are recorded (tests turn recording on and count IssueCertificate calls) into the
  # environment's own folder rather than moto's working directory.
  start moto env MOTO_RECORDER_FILEPATH="$state/moto-recording.jsonl" \
    "$moto_bin/moto_server" -H 127.0.0.1 -p "$port"
  # Any HTTP answer will do.
  wait_ready moto 60 curl -s -o /dev/null "http://127.0.0.1:$port/"
}

# Start all components in order. errexit does not apply in here (it is called as a
# condition), hence the explicit returns.
launch_all() {
  local ports etcd_client etcd_peer etcd_metrics apiserver bao moto
  ports=$(free_ports one one one one pair one) || return 1
  read -r etcd_client etcd_peer etcd_metrics apiserver bao moto <<<"$ports"
  start_etcd "$etcd_client" "$etcd_peer" "$etcd_metrics" || return 1
  start_apiserver "$apiserver" || return 1
  write_kubeconfig "$state/kubeconfig" admin || return 1
  write_kubeconfig "$state/node.kubeconfig" node || return 1
  write_kubeconfig "$state/controller-manager.kubeconfig" controller-manager || return 1
  start_controller_manager || return 1
  bao_token=$(openssl rand -hex 16)
  start_openbao "$bao" "$bao_token" || return 1
  start_moto "$moto" || return 1
}

write_env() {
  local bao_url moto_url
  bao_url=http://127.0.0.1:$(port_of openbao)
  moto_url=http://127.0.0.1:$(port_of moto)
  exp() { printf 'export %s=%q\n' "$1" "$2"; }
  {
    exp CERTSMITH_TESTENV_STATE "$state"
    exp CERTSMITH_TESTENV_KUBE_BIN "$kube_bin"
    # shellcheck disable=SC2016 # $PATH expands when the file is sourced
    printf 'export PATH=%q:"$PATH"\n' "$kube_bin"
    exp KUBECONFIG "$state/kubeconfig"
    # The node whose kubelet credentials node.kubeconfig holds (the Node object is the tests' to
    # create).
    exp CERTSMITH_TESTENV_NODE_NAME "$node_name"
    exp CERTSMITH_TESTENV_NODE_KUBECONFIG "$state/node.kubeconfig"
    # kubectl's discovery cache, per environment rather than in ~/.kube/cache.
    exp KUBECACHEDIR "$state/kube-cache"
    exp VAULT_ADDR "$bao_url"
    exp VAULT_TOKEN "$bao_token"
    exp BAO_ADDR "$bao_url"
    exp BAO_TOKEN "$bao_token"
    exp AWS_ENDPOINT_URL_ACM_PCA "$moto_url"
    exp AWS_ENDPOINT_URL "$moto_url"
    exp AWS_ACCESS_KEY_ID testing
    exp AWS_SECRET_ACCESS_KEY testing
    exp AWS_REGION us-east-1
    exp AWS_DEFAULT_REGION us-east-1
    # For outage tests: kill -STOP / -CONT these.
    exp CERTSMITH_TESTENV_BAO_PID "$(pid_of openbao)"
    exp CERTSMITH_TESTENV_MOTO_PID "$(pid_of moto)"
    # For tests that need a private server of their own (an outage must not hit other tests).
    exp CERTSMITH_TESTENV_BAO_BIN "$bao_bin/bao"
  } >"$state/env"
}

# ---------------------------------------------------------------------------------------------
# Subcommands

cmd_up() {
  if is_up; then
    log "already up ($state)"
    return 0
  fi
  if [ -e "$state" ]; then
    log "stale environment in $state: cleaning it first"
    teardown
  fi
  local t0=$EPOCHREALTIME attempt
  build_all
  # Whatever stops `up` half-way (a failed start, an error, Ctrl-C) stops what it had started.
  # The state folder stays, for its logs; the next `up` or `down` removes it.
  trap 'stop_all' EXIT
  trap 'exit 130' INT TERM
  for attempt in 1 2; do
    mkdir -p "$state"
    chmod 700 "$state"
    touch "$state/$marker"
    mkdir -p "$state"/{certs,logs,pids,ports,etcd}
    gen_certs
    failed=
    launch_all && break
    # A port picked free can be taken before the server binds it (say, by another
    # environment starting at the same moment): then try once more with new ports.
    if ((attempt == 1)) && [ -n "$failed" ] &&
      grep -qi 'address already in use' "$state/logs/$failed.log"; then
      log "a port was taken meanwhile; retrying with other ports"
      teardown
      continue
    fi
    log "logs: $state/logs"
    exit 1
  done
  write_env
  trap - EXIT INT TERM
  log "up in $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $t0 }")s: $state" \
    "(API https://127.0.0.1:$(port_of kube-apiserver), OpenBao :$(port_of openbao)," \
    "moto :$(port_of moto); source $state/env)"
}

cmd_down() {
  if [ ! -e "$state" ]; then
    log "nothing up in $state"
    return 0
  fi
  teardown
  log "down: $state removed"
}

cmd_env() {
  is_up || die "not up in $state (run: $0 up)"
  cat "$state/env"
}

cmd_status() {
  if [ ! -e "$state/$marker" ]; then
    log "nothing up in $state"
    return 1
  fi
  local name pid how ok=0
  printf '%-24s %-8s %-7s %s\n' COMPONENT PID STATE PORT
  for name in "${components[@]}"; do
    pid=$(pid_of "$name")
    if ! alive "$name"; then
      how=dead ok=1
    elif [ "$(proc_state "$pid")" = T ]; then
      how=paused # SIGSTOPped by an outage test
    else
      how=alive
    fi
    printf '%-24s %-8s %-7s %s\n' "$name" "${pid:--}" "$how" "$(cat "$state/ports/$name" 2>/dev/null)"
  done
  return $ok
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|env|status   (state: \$CERTSMITH_TESTENV_STATE, now $state)" >&2
    exit 2
    ;;
esac
