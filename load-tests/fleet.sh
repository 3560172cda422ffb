#!/usr/bin/env bash
# A self-hosted fleet end to end, larger: K × 4 `tollgate-mock --replica` processes (prefix
# cache, prefill queue, vLLM-style /metrics) behind the gateway, 8K - 1 multi-turn
# conversations of 4 + 2(K - 1) turns streamed through it. Prefix affinity against round robin
# on the replicas' own hit counters and the clients' time to first byte, a replica killed and
# restarted mid-run, and two gateway instances that never talk. It is the e2e tests
# fleet_load::* (K = 1 in CI) run larger against a release build. Prints the measured lines.
#   bash load-tests/fleet.sh        # K = 3: 12 replicas, 23 conversations, 8 turns
#   bash load-tests/fleet.sh 5
set -euo pipefail
cd "$(dirname "$0")/.."
k=${1:-3}
TOLLGATE_FLEET_SCALE="$k" cargo test --release --quiet --test e2e fleet_load -- \
    --nocapture --test-threads=1 2>&1 | grep -oE 'fleet: .*|test result.*|panicked.*'
