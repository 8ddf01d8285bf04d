#!/usr/bin/env bash
# Erlang gen_server null calls between two nodes on this machine (the peer row of the
# benchmark section "256 concurrent callers"). Needs Erlang/OTP (Debian: erlang-base).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
erlc -o "$work" "$here/gsb.erl"
host=$(hostname -s)
cookie=clouds-bench-$$
erl -noshell -sname "gsb_srv_$$" -setcookie "$cookie" -pa "$work" -eval 'gsb:server()' &
server=$!
sleep 2
echo "| what | calls/s | mean latency |"
echo "|---|---:|---:|"
erl -noshell -sname "gsb_cli_$$" -setcookie "$cookie" -pa "$work" \
    -eval "gsb:client('gsb_srv_$$@$host', ${SECONDS_EACH:-2}), halt()."
