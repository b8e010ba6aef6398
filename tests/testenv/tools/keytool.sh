#!/usr/bin/env bash
# Print the path of Java's keytool, the real JKS reader the keystore tests open stores with.
# Installs Debian's headless JRE when the machine has no keytool (needs root and the Debian
# package mirror; the machines this project runs on come with a JDK, so this is the fallback).
set -euo pipefail
exec 3>&1 1>&2
log() { printf '[testenv/keytool] %s\n' "$*" >&2; }

if ! command -v keytool >/dev/null 2>&1; then
  log "keytool not found: installing Debian's default-jre-headless"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends default-jre-headless >&2 ||
    { DEBIAN_FRONTEND=noninteractive $sudo apt-get update >&2 &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends default-jre-headless >&2; }
fi
path="$(command -v keytool)"
log "keytool: $path"
echo "$path" >&3
