#!/usr/bin/env bash
# Install the AWS Private CA emulator (moto's server) into a virtual environment of its own,
# cached by moto version and requirements hash under
#   ${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}/moto-<version>-<sha256[:12]>/venv
# Idempotent; installs into a temporary directory renamed into place, so an interrupted install
# never leaves a half cache. Progress on stderr; stdout's only line is the venv's bin directory
# (holding moto_server). CERTSMITH_PYTHON picks the interpreter (default python3).
set -euo pipefail
exec 3>&1 1>&2
log() { printf '[testenv/moto] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
req="$here/requirements.txt"
version="$(sed -n 's/^moto\[server\]==\([^[:space:];#]*\).*$/\1/p' "$req" | head -n 1)"
[[ -n "$version" ]] || die "no moto[server]==<version> pin in $req"
hash="$(sha256sum "$req" | cut -c1-12)"

cache_root="${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}"
mkdir -p "$cache_root"
cache_root="$(cd "$cache_root" && pwd -P)"
name="moto-$version-$hash"
final="$cache_root/$name"
bin="$final/venv/bin"

# A venv dies with the interpreter it was made from; running it proves that one still exists.
ready() { [[ -x "$bin/moto_server" ]] && "$bin/python" -c '' 2>/dev/null; }
if ready; then
  log "cached: $bin"
  printf '%s\n' "$bin" >&3
  exit 0
fi
exec 9>"$cache_root/.$name.lock"
flock 9
if ready; then
  printf '%s\n' "$bin" >&3
  exit 0
fi
python="${CERTSMITH_PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "$python not found in PATH"

tmp="$(mktemp -d "$cache_root/.$name.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
log "installing moto[server] $version with $("$python" --version 2>&1) into $final (first run only)"
"$python" -m venv "$tmp/venv"
# --no-compile and -B: bytecode compiled here would name the temporary path in tracebacks.
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --no-compile -r "$req"
"$tmp/venv/bin/python" -B -c 'import moto.server, boto3' || die "moto does not import"
# Venv scripts (shebangs, activate*) hard-code the venv's path: point them at the final one.
grep -rlIF -- "$tmp/venv" "$tmp/venv/bin" "$tmp/venv/pyvenv.cfg" | while IFS= read -r f; do
  sed -i "s|$tmp/venv|$final/venv|g" "$f"
done
rm -rf "$final"
chmod 755 "$tmp"
mv -T "$tmp" "$final"
trap - EXIT
"$bin/python" -m compileall -q -f -j 0 "$final/venv/lib" >/dev/null || log "warning: compileall failed"
if ! "$bin/moto_server" --help >/dev/null 2>&1; then
  rm -rf "$final"
  die "moto_server does not run after the move into $final"
fi
log "installed in $((SECONDS - start))s: $bin"
printf '%s\n' "$bin" >&3
