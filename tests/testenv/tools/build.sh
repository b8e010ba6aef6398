#!/usr/bin/env bash
# Build helm and kube-score from the pinned harness modules next to this script
# (helm/go.mod, kube-score/go.mod), cached by version under
#   ${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}/tools-helm-<v>-kube-score-<v>/bin
#
# Idempotent: nothing is built when both binaries are cached. Builds go into a temporary
# directory moved into place with one rename, so an interrupted build never leaves a
# half-filled cache. Progress goes to stderr; stdout gets only the bin directory.
#
# Measured on the 2-core machine: 233 s with empty Go module and build caches, 180 s with the
# modules already downloaded, instant once cached.
#
# Why kube-score and not kube-linter: golang.stackrox.io/kube-linter is not served by the Go
# module proxy reachable here. Its host is not on the proxy's allowlist ("Go module host not
# permitted"; HTTP 403 for the version list and for v0.8.3, v0.7.6, v0.7.2 and v0.6.8), and
# its source cannot be required under a github.com path because its go.mod declares the
# golang.stackrox.io path. kube-score (github.com/zegl/kube-score) covers the same ground
# for the rendered chart: security contexts, probes, resources, PDBs, selectors.
set -euo pipefail
exec 3>&1 1>&2

log() { printf '[testenv/tools] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
version_of() { # MODULE-DIR MODULE-PATH
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/$1/go.mod"
}
helm_version="$(version_of helm helm.sh/helm/v3)"
score_version="$(version_of kube-score github.com/zegl/kube-score)"
[[ -n "$helm_version" && -n "$score_version" ]] || die "cannot read tool versions from go.mod"

cache_root="${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}"
mkdir -p "$cache_root"
cache_root="$(cd "$cache_root" && pwd -P)"
name="tools-helm-${helm_version}-kube-score-${score_version}"
final="$cache_root/$name"

complete() { [[ -x "$1/bin/helm" && -x "$1/bin/kube-score" ]]; }
if complete "$final"; then
  log "cached: $final/bin"
  printf '%s\n' "$final/bin" >&3
  exit 0
fi
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_root/.$name.lock"
  flock 9
  if complete "$final"; then
    printf '%s\n' "$final/bin" >&3
    exit 0
  fi
fi
command -v go >/dev/null 2>&1 || die "go not found in PATH"

tmp="$(mktemp -d "$cache_root/.$name.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
start=$SECONDS
mkdir -p "$tmp/bin"
log "building helm $helm_version and kube-score $score_version with $(go version)"
(cd "$here/helm" && go build -mod=readonly -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" \
  -o "$tmp/bin/helm" helm.sh/helm/v3/cmd/helm)
(cd "$here/kube-score" && go build -mod=readonly -trimpath -ldflags "-s -w" \
  -o "$tmp/bin/kube-score" github.com/zegl/kube-score/cmd/kube-score)
complete "$tmp" || die "build finished but binaries are missing in $tmp/bin"
"$tmp/bin/helm" version --short >/dev/null || die "helm does not run"
[[ -e "$final" ]] && rm -rf "$final"
chmod 755 "$tmp"
mv -T "$tmp" "$final"
trap - EXIT
log "built in $((SECONDS - start))s: $final/bin"
printf '%s\n' "$final/bin" >&3
