#!/bin/sh
# Runs `sort` on a drce node through the legacy DRCE protocol over HTTP (POST /drce), as the
# original clients did: the request's `data` is the base64 of the protocol's JSON, the reply
# is the JSON array of result items, with stdout and stderr in base64.
#
#   sh curl.sh            # prints the reply, then the task's stdout decoded: 123, abc, def
#
# The node is $DRCE_SERVER (default http://127.0.0.1:8470); $DRCE_TOKEN, when set, is sent
# as a bearer token.
set -eu
server=${DRCE_SERVER:-http://127.0.0.1:8470}

# type 0 sets a task; tmode 1 is sync: the reply comes when the task is done.
data=$(printf '%s' '{"session":{"tmode":1},"command":"sort","input":"def\nabc\n123\n"}' | base64 | tr -d '\n')
if [ -n "${DRCE_TOKEN:-}" ]; then
  reply=$(curl -sS --fail-with-body -H "Authorization: Bearer $DRCE_TOKEN" "$server/drce" -d "{\"type\":0,\"id\":2345,\"data\":\"$data\"}")
else
  reply=$(curl -sS --fail-with-body "$server/drce" -d "{\"type\":0,\"id\":2345,\"data\":\"$data\"}")
fi
printf '%s\n' "$reply"

# The first item's stdout, decoded.
printf '%s' "$reply" | sed -n 's/.*"stdout":"\([^"]*\)".*/\1/p' | base64 -d
