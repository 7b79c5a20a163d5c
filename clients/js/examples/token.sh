#!/bin/sh
# A client token for danmu-broker with openssl (docs/protocol.md 2.1): HS256 with the broker's
# auth.jwt_secret, `sub` the user_id, `exp` in an hour. USER_ID and NICKNAME must not hold `"`.
# usage: DANMU__AUTH__JWT_SECRET=... token.sh USER_ID [NICKNAME]
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
payload=$(printf '{"sub":"%s","nickname":"%s","exp":%s}' "$1" "${2:-$1}" "$(($(date +%s) + 3600))" | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$DANMU__AUTH__JWT_SECRET" -binary | b64url)
echo "$header.$payload.$sig"
