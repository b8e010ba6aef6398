#!/usr/bin/env bash
# One OpenBao PKI for a test or a benchmark: a root mount, an intermediate mount signed by it
# (imported with its root, so OpenBao returns the root in ca_chain), a role `agents` and a
# policy allowing only signing with it. Used by the integration tests (support::Pki) and by
# `make bench --issuer vault`, so both sign through the same shape of PKI.
#
#   pki.sh ID [ROLE-JSON]
#
# Talks to $VAULT_ADDR with $VAULT_TOKEN. Mounts are root-ID and int-ID, the policy
# certsmith-ID. ROLE-JSON overrides the role's fields (merged over allowed_domains
# example.test with subdomains, SPIFFE URIs, any key type, max_ttl 72h). Prints one JSON
# object: {"sign_path", "root_pem", "policy", "int_mount", "root_mount"}.
set -euo pipefail
id=${1:?usage: pki.sh ID [ROLE-JSON]}
role_json=${2:-"{}"}
: "${VAULT_ADDR:?}" "${VAULT_TOKEN:?}"
root="root-$id"
int="int-$id"
policy="certsmith-$id"

bao() { # METHOD PATH [JSON] -> the response body; fails loudly with OpenBao's answer
  local out
  if ! out=$(curl -sS -X "$1" -H "X-Vault-Token: $VAULT_TOKEN" ${3:+-d "$3"} -w '\n%{http_code}' "$VAULT_ADDR/v1/$2"); then
    echo "pki.sh: $1 $2: request failed" >&2
    return 1
  fi
  local code=${out##*$'\n'}
  local body=${out%$'\n'*}
  if [ "$code" -ge 400 ]; then
    echo "pki.sh: $1 $2: $code $body" >&2
    return 1
  fi
  printf '%s' "$body"
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][sys.argv[1]])' "$1"; }
json() { python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@"; }

bao POST "sys/mounts/$root" '{"type":"pki","config":{"max_lease_ttl":"87600h"}}' >/dev/null
root_pem=$(bao POST "$root/root/generate/internal" '{"common_name":"Vault Test Root","ttl":"87600h"}' | field certificate)
bao POST "sys/mounts/$int" '{"type":"pki","config":{"max_lease_ttl":"43800h"}}' >/dev/null
csr=$(bao POST "$int/intermediate/generate/internal" '{"common_name":"Vault Test Intermediate"}' | field csr)
signed=$(bao POST "$root/root/sign-intermediate" "$(json csr "$csr" format pem ttl 43800h)" | field certificate)
bao POST "$int/intermediate/set-signed" "$(json certificate "$signed"$'\n'"$root_pem")" >/dev/null
role=$(python3 -c 'import json,sys
role = {"allowed_domains": "example.test", "allow_subdomains": True, "max_ttl": "72h",
        "key_type": "any", "allowed_uri_sans": "spiffe://*"}
role.update(json.loads(sys.argv[1]))
print(json.dumps(role))' "$role_json")
bao POST "$int/roles/agents" "$role" >/dev/null
bao POST "sys/policies/acl/$policy" "$(json policy "path \"$int/sign/agents\" { capabilities = [\"create\", \"update\"] }")" >/dev/null
python3 -c 'import json,sys; print(json.dumps({"sign_path": sys.argv[1], "root_pem": sys.argv[2], "policy": sys.argv[3], "int_mount": sys.argv[4], "root_mount": sys.argv[5]}))' \
  "$int/sign/agents" "$root_pem" "$policy" "$int" "$root"
