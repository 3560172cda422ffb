#!/usr/bin/env bash
# Slow-header clients at scale: N connections (default 10,000) each trickling a request head
# one byte per 200 ms, while a real client sends 20 requests/s; every slow one must be cut by
# the header deadline (408), the real client's p99 must stay within 10x its idle p99, and
# the gateway's RSS under its documented bound. It is the e2e test
# slow_clients::slow_header_clients_are_cut_and_a_real_client_keeps_its_latency (2,000 in
# CI), run larger against a release build. Prints the measured line.
#   bash load-tests/slow-headers.sh            # 10,000
#   bash load-tests/slow-headers.sh 20000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
# The test process and the gateway each hold N sockets.
ulimit -n "$(( n * 2 + 4096 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "== $n slow-header connections (ulimit -n $(ulimit -n))"
TOLLGATE_SLOW_CLIENTS="$n" cargo test --release --test e2e \
  slow_clients::slow_header_clients_are_cut_and_a_real_client_keeps_its_latency \
  -- --exact --nocapture 2>&1 | grep -E "slow clients:|test result|panicked|assert" 
