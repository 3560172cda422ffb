#!/usr/bin/env bash
# The fleet simulator's full run: every workload through every policy (round robin, random,
# least request, two choices, consistent hashing with bounded load, an SGLang-style cache-aware
# tree, Tollgate's picker, an oracle), one JSON object per line on stdout. Minutes, not hours.
#   bash bench/fleet/run.sh                      # everything
#   bash bench/fleet/run.sh --workload churn     # one workload
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --quiet --bench fleet -- --full "$@"
