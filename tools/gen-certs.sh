#!/usr/bin/env bash
# Writes a private CA and the certificates of a local runtime-manager setup:
#
#   ca.pem, ca.key                          the CA both sides trust
#   runtime-manager.pem, runtime-manager.key  server identity (SAN localhost, 127.0.0.1, ::1)
#   client.pem, client.key                  CN=client: may write, append, read everything, shut down
#   reader.pem, reader.key                  CN=reader: may only read
#   policy.json                             the policy granting exactly that (docs/POLICY.md)
#
# Keys are EC P-256 (fast to make and to use). Idempotent: files that exist
# are kept, missing ones are made (a new CA re-issues every certificate so the
# set stays consistent). Never prompts.
#
# Usage: tools/gen-certs.sh OUTDIR [--days N]
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [--days N]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
OUT="$1"; shift
DAYS=825
while [[ $# -gt 0 ]]; do
    case "$1" in
        --days) DAYS="${2:?--days needs a number}"; shift 2 ;;
        *) usage ;;
    esac
done

command -v openssl >/dev/null 2>&1 || { echo "gen-certs: openssl not found; apt-get install -y openssl" >&2; exit 1; }
mkdir -p "$OUT"
cd "$OUT"
umask 077

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

reissue=0
if [[ ! -f ca.pem || ! -f ca.key ]]; then
    new_key ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$DAYS" -subj "/CN=Repeater local CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.pem 2>/dev/null
    reissue=1
fi

# issue NAME CN EXTFILE-CONTENT
issue() {
    local name="$1" cn="$2" ext="$3"
    if [[ $reissue -eq 0 && -f "$name.pem" && -f "$name.key" ]]; then return; fi
    [[ -f "$name.key" ]] || new_key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$TMP/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" > "$TMP/$name.ext"
    openssl x509 -req -in "$TMP/$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial "$TMP/ca.srl" \
        -days "$DAYS" -sha256 -extfile "$TMP/$name.ext" -out "$name.pem" 2>/dev/null
}

issue runtime-manager runtime-manager "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
for who in client reader; do
    issue "$who" "$who" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done

if [[ ! -f policy.json || $reissue -eq 1 ]]; then
    cat > policy.json <<'JSON'
{
  "rules": [
    {
      "name": "client: provisions files and may stop the runtime manager",
      "match": { "common_name": "client" },
      "write": [""],
      "append": [""],
      "read": [""],
      "shutdown": true
    },
    {
      "name": "reader: may only read",
      "match": { "common_name": "reader" },
      "read": [""]
    }
  ]
}
JSON
fi

# Certificates are public; keys stay private to the owner.
chmod 644 ./*.pem policy.json
chmod 600 ./*.key
echo "gen-certs: certificates and policy.json in $(pwd)" >&2
