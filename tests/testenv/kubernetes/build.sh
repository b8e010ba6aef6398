#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, etcd and kubectl from the
# pinned harness module next to this script (go.mod / go.sum), cached by
# version under
#   ${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}/kubernetes-<k8s>-etcd-<etcd>/bin
#
# Idempotent: if all four binaries are already cached, nothing is built.
# Builds go into a temporary directory next to the final one and are moved
# into place with a single rename, so an interrupted build never leaves a
# half-filled cache. Progress goes to stderr; the only thing printed on stdout
# is the absolute bin directory (usable as KUBEBUILDER_ASSETS).
set -euo pipefail

# Everything goes to stderr except the final result (fd 3).
exec 3>&1 1>&2

log() { printf '[testenv/kubernetes] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

# Versions come from go.mod so the cache key cannot drift from what is built.
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
[[ -n "$k8s_version" ]] || die "cannot find k8s.io/kubernetes version in $here/go.mod"
[[ -n "$etcd_version" ]] || die "cannot find go.etcd.io/etcd/server/v3 version in $here/go.mod"
[[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || die "unexpected Kubernetes version $k8s_version"
k8s_major="${BASH_REMATCH[1]}"
k8s_minor="${BASH_REMATCH[2]}"

cache_root="${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}"
name="kubernetes-${k8s_version}-etcd-${etcd_version}"
binaries=(kube-apiserver kube-controller-manager etcd kubectl)

mkdir -p "$cache_root"
cache_root="$(cd "$cache_root" && pwd -P)"
final="$cache_root/$name"

complete() {
  local b
  for b in "${binaries[@]}"; do
    [[ -x "$1/bin/$b" ]] || return 1
  done
}

if complete "$final"; then
  log "cached: $final/bin"
  printf '%s\n' "$final/bin" >&3
  exit 0
fi

# Serialise concurrent builds of the same version (best effort: needs flock).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_root/.$name.lock"
  log "waiting for build lock"
  flock 9
  if complete "$final"; then
    log "cached (built by a concurrent run): $final/bin"
    printf '%s\n' "$final/bin" >&3
    exit 0
  fi
fi

command -v go >/dev/null 2>&1 || die "go not found in PATH (Go >= 1.25 needed)"

tmp="$(mktemp -d "$cache_root/.$name.tmp.XXXXXX")"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

ver_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ver_flags+=" -X $pkg.gitVersion=$k8s_version"
  ver_flags+=" -X $pkg.gitMajor=$k8s_major"
  ver_flags+=" -X $pkg.gitMinor=$k8s_minor"
  ver_flags+=" -X $pkg.gitTreeState=clean"
  ver_flags+=" -X $pkg.gitCommit="  # else the placeholder "$Format:%H$" shows
done
k8s_ldflags="-s -w$ver_flags"
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.Version=${etcd_version#v}"

start=$SECONDS
log "building Kubernetes $k8s_version and etcd $etcd_version with $(go version)"
log "into $tmp (a cold build takes several minutes)"
mkdir -p "$tmp/bin"

cd "$here"
# -mod=readonly: never rewrite the pinned go.mod / go.sum.
log "go build kube-apiserver kube-controller-manager kubectl"
go build -mod=readonly -trimpath -ldflags "$k8s_ldflags" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl
log "go build etcd"
go build -mod=readonly -trimpath -ldflags "$etcd_ldflags" -o "$tmp/bin/etcd" \
  go.etcd.io/etcd/server/v3

complete "$tmp" || die "build finished but binaries are missing in $tmp/bin"

# Sanity check before publishing into the cache.
got="$("$tmp/bin/kube-apiserver" --version)"
[[ "$got" == "Kubernetes $k8s_version" ]] || die "kube-apiserver --version reports '$got', want 'Kubernetes $k8s_version'"

# A leftover incomplete directory (e.g. edited by hand) would block the rename.
if [[ -e "$final" ]]; then
  log "removing incomplete $final"
  rm -rf "$final"
fi
chmod 755 "$tmp"
mv -T "$tmp" "$final"
trap - EXIT

log "built in $((SECONDS - start))s: $final/bin"
printf '%s\n' "$final/bin" >&3
