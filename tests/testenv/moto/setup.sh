#!/usr/bin/env bash
# Install the AWS Private CA emulator (moto's server) into a virtual environment of its own,
# cached by moto version and requirements hash. Prints the venv's bin dir as the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${CERTSMITH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/certsmith}"
version=$(sed -n 's/^moto\[server\]==//p' "$here/requirements.txt")
hash=$(sha256sum "$here/requirements.txt" | cut -c1-12)
dest="$cache/moto-$version-$hash"
if [ -x "$dest/venv/bin/moto_server" ]; then
  echo "$dest/venv/bin"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.moto.lock"
flock 9
if [ ! -x "$dest/venv/bin/moto_server" ]; then
  echo "moto: installing $version into $dest (first run only)" >&2
  tmp=$(mktemp -d "$cache/.moto-tmp.XXXX")
  trap 'rm -rf "$tmp"' EXIT
  # The venv is built at its final path (venvs hard-code it), in a staging dir that is
  # renamed only after a complete install.
  mkdir -p "$dest.partial" && rm -rf "$dest.partial"
  python3 -m venv "$dest.partial/venv" >&2
  "$dest.partial/venv/bin/pip" install --quiet -r "$here/requirements.txt" >&2
  rm -rf "$dest"
  mv "$dest.partial" "$dest"
  # Fix the paths pip wrote while the venv lived under .partial.
  grep -rlF "$dest.partial" "$dest/venv/bin" | xargs -r sed -i "s#$dest.partial#$dest#g"
fi
echo "$dest/venv/bin"
