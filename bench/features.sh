#!/usr/bin/env bash
# What each feature costs per request, side by side with nginx's plain proxy, through
# ../shared/bench-peers (run it once: PEERS=base ../shared/bench-peers/setup.sh). Four runs,
# each with nginx and two Tollgate configs (bench/peer.sh's TG_FEATURES), JSON and SSE at 32
# connections and JSON at 250 req/s:
#
#   1. base (one consumer key, access log off)     vs  base + limits
#   2. base + access log to a file                 vs  base + a priced model
#   3. reference (limits, price, log to a file)    vs  reference + payload capture
#   4. reference, threads = 1                      vs  threads = 2, every process free to use
#      both cores (the load generator and the mock too): how far a second worker scales here
#
#   bash bench/features.sh            # DUR=5 s per profile; ~12 minutes
#   TG_BIN=/path/to/tollgate DUR=10 bash bench/features.sh
#
# Prints each run's table; the raw rows stay in the harness's .run/results-*.jsonl.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
harness=${BENCH_PEERS:-$here/../shared/bench-peers}
export TG_BIN=${TG_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/tollgate}
export DUR=${DUR:-5} CONNS=${CONNS:-32} RATES=${RATES:-250} PHASES=instant
export TOLLGATE_BIN=$here/bench/peer.sh
[ -x "$TG_BIN" ] || { echo "no gateway binary at $TG_BIN (cargo build --release)" >&2; exit 1; }

# run LABEL_A FEATURES_A LABEL_B FEATURES_B [ENV...]: nginx, then A as the harness's tollgate
# peer, then B as its custom peer.
run() {
  local a=$1 fa=$2 b=$3 fb=$4; shift 4
  echo "## tollgate = $a [$fa]; $b = [$fb]"
  env "$@" TG_FEATURES="$fa" PEER_NAME="$b" PEER_PORT=18600 \
    PEER_HEADERS="Authorization: Bearer sk-bench-client" \
    PEER_CMD="TG_FEATURES='$fb' exec '$here/bench/peer.sh'" \
    "$harness/run.sh" nginx tollgate custom 2>&1 | grep -E '^\|'
  echo
}

run base "" limits "limit"
run log-file "log-file" price "price"
run reference "limit price log-file" capture "limit price log-file capture"
run threads1 "limit price log-file" threads2 "limit price log-file threads2" PROXY_CPU=0-1 LOAD_CPU=0-1
