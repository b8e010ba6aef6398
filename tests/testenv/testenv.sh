#!/usr/bin/env bash
# The local test environment: etcd, kube-apiserver, kube-controller-manager, OpenBao (the
# Vault API, dev mode) and the AWS Private CA emulator (moto), each on a free 127.0.0.1 port,
# with generated certificates.
#
#   testenv.sh up | down | env | status
#
# State (certs, data, logs, PIDs, kubeconfig, env file) lives in $CERTSMITH_TESTENV_STATE
# (default .testenv/default); different state folders run side by side. `down` stops exactly
# the PIDs recorded there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="${CERTSMITH_TESTENV_STATE:-$root/.testenv/default}"
components=(etcd kube-apiserver kube-controller-manager openbao moto)

log() { echo "testenv: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pid_of() { cat "$state/pids/$1.pid" 2>/dev/null || true; }

alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Start a component in its own session (process group) so `down` can stop it and its children.
start() {
  local name=$1
  shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/pids/$name.pid"
}

# Wait until `check` succeeds; on timeout name the component and show its log tail.
wait_healthy() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name" || [ $SECONDS -ge $deadline ]; then
      log "$name failed to start (see $state/logs/$name.log); last lines:"
      tail -n 40 "$state/logs/$name.log" >&2 || true
      stop_all
      exit 1
    fi
    sleep 0.3
  done
}

stop_one() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$state/pids/$name.pid"
}

stop_all() {
  # Clients of etcd first, etcd last.
  for name in moto openbao kube-controller-manager kube-apiserver etcd; do stop_one "$name"; done
}

gen_certs() {
  local c="$state/certs"
  mkdir -p "$c"
  openssl ecparam -name prime256v1 -genkey -noout -out "$c/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$c/ca.key" -subj "/CN=certsmith-testenv-ca" -days 30 -out "$c/ca.crt" 2>/dev/null
  issue() { # name subject [san]
    openssl ecparam -name prime256v1 -genkey -noout -out "$c/$1.key" 2>/dev/null
    openssl req -new -key "$c/$1.key" -subj "$2" -out "$c/$1.csr" 2>/dev/null
    local ext="$c/$1.ext"
    if [ -n "${3:-}" ]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$ext"
    fi
    openssl x509 -req -in "$c/$1.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 30 -extfile "$ext" -out "$c/$1.crt" 2>/dev/null
  }
  issue apiserver "/CN=kube-apiserver" "IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc"
  issue admin "/O=system:masters/CN=certsmith-admin"
  # Without per-controller service accounts the controller-manager needs broad rights; this
  # is a throwaway local control plane, so it gets system:masters.
  issue controller-manager "/O=system:masters/CN=system:kube-controller-manager"
  openssl genrsa -out "$c/sa.key" 2048 2>/dev/null
  openssl rsa -in "$c/sa.key" -pubout -out "$c/sa.pub" 2>/dev/null
}

kubeconfig() { # file user
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: certsmith-testenv
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $state/certs/ca.crt
users:
- name: $2
  user:
    client-certificate: $state/certs/$2.crt
    client-key: $state/certs/$2.key
contexts:
- name: certsmith-testenv
  context: {cluster: certsmith-testenv, user: $2}
current-context: certsmith-testenv
KC
}

up() {
  if [ -f "$state/env" ]; then
    local all=1
    for name in "${components[@]}"; do alive "$name" || all=0; done
    if [ $all = 1 ]; then log "already up ($state)"; return 0; fi
    log "stale environment in $state: cleaning it"
    down
  fi
  local t0=$SECONDS
  local kube_bin bao_bin moto_bin
  kube_bin=$(bash "$here/kubernetes/build.sh" | tail -n 1)
  bao_bin=$(bash "$here/openbao/build.sh" | tail -n 1)
  moto_bin=$(bash "$here/moto/setup.sh" | tail -n 1)
  mkdir -p "$state"/{pids,logs,etcd}
  gen_certs

  local etcd_port peer_port metrics_port bao_port moto_port bao_token
  etcd_port=$(free_port); peer_port=$(free_port); metrics_port=$(free_port)
  apiserver_port=$(free_port); bao_port=$(free_port); moto_port=$(free_port)
  bao_token="root-$(openssl rand -hex 12)"

  start etcd "$kube_bin/etcd" --data-dir "$state/etcd" --name testenv \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "testenv=http://127.0.0.1:$peer_port" --listen-metrics-urls "http://127.0.0.1:$metrics_port" \
    --unsafe-no-fsync
  wait_healthy etcd 60 curl -sf "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$kube_bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$apiserver_port" --advertise-address 127.0.0.1 \
    --endpoint-reconciler-type none --cert-dir "$state/certs" \
    --tls-cert-file "$state/certs/apiserver.crt" --tls-private-key-file "$state/certs/apiserver.key" \
    --client-ca-file "$state/certs/ca.crt" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$state/certs/sa.pub" --service-account-signing-key-file "$state/certs/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24
  local curl_admin=(curl -sf --cacert "$state/certs/ca.crt" --cert "$state/certs/admin.crt" --key "$state/certs/admin.key")
  wait_healthy kube-apiserver 90 "${curl_admin[@]}" "https://127.0.0.1:$apiserver_port/readyz"

  kubeconfig "$state/kubeconfig" admin
  kubeconfig "$state/controller-manager.kubeconfig" controller-manager
  start kube-controller-manager "$kube_bin/kube-controller-manager" \
    --kubeconfig "$state/controller-manager.kubeconfig" \
    --controllers garbage-collector-controller,namespace-controller,serviceaccount-controller \
    --leader-elect=false --secure-port 0 --use-service-account-credentials=false \
    --root-ca-file "$state/certs/ca.crt" --service-account-private-key-file "$state/certs/sa.key"
  wait_healthy kube-controller-manager 60 "$kube_bin/kubectl" --kubeconfig "$state/kubeconfig" get serviceaccount default -n default

  # Dev mode: in-memory, unsealed, root token chosen here; -dev-no-store-token keeps it out
  # of ~/.vault-token. Tests enable PKI mounts and auth methods themselves.
  start openbao env HOME="$state" "$bao_bin/bao" server -dev -dev-root-token-id="$bao_token" \
    -dev-listen-address="127.0.0.1:$bao_port" -dev-no-store-token
  wait_healthy openbao 60 curl -sf "http://127.0.0.1:$bao_port/v1/sys/health"

  start moto "$moto_bin/moto_server" -H 127.0.0.1 -p "$moto_port"
  wait_healthy moto 60 curl -sf "http://127.0.0.1:$moto_port/moto-api/"

  cat >"$state/env" <<ENV
export CERTSMITH_TESTENV_STATE=$state
export CERTSMITH_TESTENV_KUBE_BIN=$kube_bin
export KUBECONFIG=$state/kubeconfig
export PATH=$kube_bin:\$PATH
export VAULT_ADDR=http://127.0.0.1:$bao_port
export VAULT_TOKEN=$bao_token
export BAO_ADDR=http://127.0.0.1:$bao_port
export BAO_TOKEN=$bao_token
export CERTSMITH_TESTENV_BAO_PID=$(pid_of openbao)
export AWS_ENDPOINT_URL_ACM_PCA=http://127.0.0.1:$moto_port
export CERTSMITH_TESTENV_MOTO_PID=$(pid_of moto)
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
ENV
  log "up in $((SECONDS - t0))s: API https://127.0.0.1:$apiserver_port, OpenBao :$bao_port, moto :$moto_port (source $state/env)"
}

down() {
  [ -d "$state" ] || { log "nothing to stop in $state"; return 0; }
  stop_all
  rm -rf "$state"
  log "down ($state removed)"
}

status() {
  for name in "${components[@]}"; do
    if alive "$name"; then echo "$name: running (pid $(pid_of "$name"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) [ -f "$state/env" ] && cat "$state/env" || { log "not up ($state)"; exit 1; } ;;
  status) status ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
