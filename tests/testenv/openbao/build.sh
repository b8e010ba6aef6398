#!/usr/bin/env bash
# Build the OpenBao server (`bao`, the Vault API) from the pinned harness module next to this
# script, cached by version under
#   ${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}/openbao-v<version>-<commit>/bin
# Idempotent; builds into a temporary directory renamed into place, so an interrupted build
# never leaves a half cache. Progress on stderr; stdout's only line is the bin directory.
set -euo pipefail
exec 3>&1 1>&2
log() { printf '[testenv/openbao] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# The release the pinned pseudo-version stands for (see go.mod); checked against the module's
# CHANGELOG below, so a go.mod bump without a matching bump here fails loudly.
version=2.4.0
commit="$(awk '($1 == "github.com/openbao/openbao" && $2 ~ /^v0\.0\.0-/) || ($2 == "github.com/openbao/openbao" && $3 ~ /^v0\.0\.0-/) { v = ($1 == "require") ? $3 : $2; n = split(v, p, "-"); print p[n]; exit }' "$here/go.mod")"
[[ -n "$commit" ]] || die "cannot find the github.com/openbao/openbao pseudo-version in $here/go.mod"

cache_root="${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}"
mkdir -p "$cache_root"
cache_root="$(cd "$cache_root" && pwd -P)"
name="openbao-v$version-$commit"
final="$cache_root/$name"

if [[ -x "$final/bin/bao" ]]; then
  log "cached: $final/bin"
  printf '%s\n' "$final/bin" >&3
  exit 0
fi
exec 9>"$cache_root/.$name.lock"
flock 9
if [[ -x "$final/bin/bao" ]]; then
  printf '%s\n' "$final/bin" >&3
  exit 0
fi
command -v go >/dev/null 2>&1 || die "go not found in PATH"

tmp="$(mktemp -d "$cache_root/.$name.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# GOPROXY stays as configured. go.sum (committed) pins every module hash, and -mod=readonly
# never consults the checksum database, which is unreachable here.
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
start=$SECONDS
cd "$here"
go mod download github.com/openbao/openbao
src="$(go list -mod=readonly -m -f '{{.Dir}}' github.com/openbao/openbao)"
released="$(sed -n 's/^## \([0-9][0-9.]*\)[[:space:]]*$/\1/p' "$src/CHANGELOG.md" | head -n 1)"
[[ "$released" == "$version" ]] \
  || die "go.mod pins the commit of OpenBao '$released' (its CHANGELOG), but build.sh says $version"
log "building OpenBao $version ($commit) with $(go version); a cold build takes a few minutes"
go build -mod=readonly -trimpath \
  -ldflags "-s -w -X github.com/openbao/openbao/version.fullVersion=$version -X github.com/openbao/openbao/version.GitCommit=$commit" \
  -o "$tmp/bin/bao" github.com/openbao/openbao
got="$("$tmp/bin/bao" version)"
[[ "$got" == *"v$version"* ]] || die "bao version reports '$got', want v$version"
rm -rf "$final"
chmod 755 "$tmp"
mv -T "$tmp" "$final"
trap - EXIT
log "built in $((SECONDS - start))s: $final/bin ($got)"
printf '%s\n' "$final/bin" >&3
