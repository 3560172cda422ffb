#!/usr/bin/env bash
# Allocations per request through the whole gateway, measured, on the release binary with the
# reference config of bench/peer.sh (a consumer key under limits, a priced model, the access log
# to a file): heaptrack counts every call to an allocation function. Two runs per kind differ
# only in the requests sent (N and 2N), so startup and shutdown cancel out:
# per request = (calls(2N) - calls(N)) / N. JSON and SSE (16 deltas and a usage chunk)
# separately; the top allocation sites of the SSE run follow, for the stages.
#   bash bench/allocs.sh            # N = 1000
#   N=4000 bash bench/allocs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
N=${N:-1000}
command -v heaptrack >/dev/null || { echo "needs heaptrack (Debian: apt install heaptrack)"; exit 1; }
cargo build --release --quiet --bins
work=$(mktemp -d)
mock_pid=
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$root/target/release/tollgate-mock" --listen 127.0.0.1:0 > "$work/mock.out" 2>/dev/null &
mock_pid=$!
for _ in $(seq 100); do grep -q listening "$work/mock.out" 2>/dev/null && break; sleep 0.05; done
mock=$(sed -n 's/^listening on //p' "$work/mock.out" | head -1)

json='{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Say hello to the benchmark"}]}'
sse='{"model":"gpt-4o-mini","max_tokens":16,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello to the benchmark"}]}'

# calls to allocation functions in one gateway run that serves `n` requests of `body`
allocs() {
  local name=$1 body=$2 n=$3 dir="$work/$1-$3"
  mkdir -p "$dir"
  local port; port=$(free_port)
  printf '#!/bin/sh\nexec heaptrack -o %s/heap %s/target/release/tollgate "$@"\n' "$dir" "$root" > "$dir/wrap"
  chmod +x "$dir/wrap"
  (cd "$dir" && PEER_PORT=$port MOCK_BASE_URL="http://$mock/v1" TG_BIN="$dir/wrap" \
     bash "$root/bench/peer.sh" > "$dir/out" 2>&1 &)
  for _ in $(seq 400); do curl -sf "http://127.0.0.1:$((port + 1))/healthz" >/dev/null && break; sleep 0.05; done
  : > "$dir/curl.cfg"
  for _ in $(seq "$n"); do
    printf 'url = "http://127.0.0.1:%s/v1/chat/completions"\noutput = "/dev/null"\n' "$port" >> "$dir/curl.cfg"
    printf 'header = "Authorization: Bearer sk-bench-client"\nheader = "Content-Type: application/json"\ndata = %s\n' "'$body'" >> "$dir/curl.cfg"
  done
  curl -s --no-progress-meter --parallel --parallel-max 8 --config "$dir/curl.cfg"
  pkill -TERM -f "$root/target/release/tollgate -c tollgate-peer.toml"
  for _ in $(seq 600); do [ -e "$dir/heap.zst" ] || [ -e "$dir/heap.gz" ] && ! pgrep -f "$dir/heap" >/dev/null && break; sleep 0.1; done
  sleep 0.5
  heaptrack_print "$dir"/heap.* 2>/dev/null > "$dir/report"
  sed -n 's/^calls to allocation functions: \([0-9]*\).*/\1/p' "$dir/report"
}

for kind in json sse; do
  body=$json; [ "$kind" = sse ] && body=$sse
  one=$(allocs "$kind" "$body" "$N")
  two=$(allocs "$kind" "$body" $((2 * N)))
  echo "$kind: $(( (two - one) / N )) allocations per request (runs of $N and $((2 * N)): $one, $two calls)"
done
echo "== top allocation sites, SSE run of $((2 * N)) requests"
sed -n '/^MOST CALLS TO ALLOCATION FUNCTIONS/,/^PEAK MEMORY/p' "$work/sse-$((2 * N))/report" | grep -E '^[0-9]+ calls' -A3 | head -60
