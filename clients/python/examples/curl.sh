#!/bin/sh
# Send one message to the Herald relay with curl.
#
# HERALD_URL defaults to http://127.0.0.1:7591 and HERALD_TOKEN to the
# output of `herald token`. `--noproxy '*'` keeps curl off any proxy,
# because a proxy cannot reach this machine's loopback and usually responds with 502.
set -eu

url="${HERALD_URL:-http://127.0.0.1:7591}"
token="${HERALD_TOKEN:-$(herald token)}"
text="${1:-Herald curl example: order 600519 filled}"

# JSON-escape the text: backslashes and double quotes. Newlines in the text
# are not escaped here; send such text with a JSON tool such as jq.
escaped=$(printf '%s' "$text" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')

curl --silent --show-error --fail-with-body --noproxy '*' --max-time 35 \
    -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' \
    --data-binary "{\"text\": \"$escaped\", \"title\": \"curl\"}" \
    "$url/v1/send?wait=true"
echo
