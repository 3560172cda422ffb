#!/usr/bin/env bash
# Tollgate as a peer of ../shared/bench-peers with a chosen feature set, for the side-by-side
# runs in docs/performance.md. Used as the harness's TOLLGATE_BIN: the harness
# exports PEER_PORT and MOCK_BASE_URL and runs `$TOLLGATE_BIN -c tollgate.toml` in the peer's
# scratch directory; this script writes its own config there instead and execs the gateway.
#
#   TG_FEATURES   words, default "limit price log-file" (the issue's reference config):
#                 limit     the consumer under rpm/tpm/concurrency limits (never reached)
#                 price     the model priced (cost metric, access-log cost_usd)
#                 log-file  access log to ./access.log (else log-stdout, or neither: off)
#                 capture   payload capture on (request and answer in each access-log line)
#                 threads2  two worker threads
#   TG_BIN        the gateway binary (default: target/release/tollgate beside this script)
#
#   TOLLGATE_BIN=$PWD/bench/peer.sh DUR=5 PHASES=instant ../shared/bench-peers/run.sh direct nginx tollgate
#   TG_FEATURES="price" TOLLGATE_BIN=$PWD/bench/peer.sh ... run.sh nginx tollgate   # no limits, log off
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${TG_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/tollgate}
features=" ${TG_FEATURES-limit price log-file} "
has() { [[ $features == *" $1 "* ]]; }

threads=1; has threads2 && threads=2
log=off; has log-stdout && log=stdout; has log-file && log="$PWD/access.log"
{
  cat <<TOML
[server]
listen = "127.0.0.1:$PEER_PORT"
admin_listen = "127.0.0.1:$((PEER_PORT + 1))"
threads = $threads
pid_file = "$PWD/tollgate.pid"
upgrade_sock = "$PWD/upgrade.sock"

[log]
access_log = "$log"

[[providers]]
name = "mock"
kind = "openai"
base_url = "$MOCK_BASE_URL"
api_key_env = "BENCH_UPSTREAM_KEY"

[[models]]
name = "gpt-4o-mini"
targets = [ { provider = "mock", model = "gpt-4o-mini" } ]
TOML
  has price && echo 'price = { input_per_mtok = 0.15, output_per_mtok = 0.60 }'
  cat <<TOML

[[consumers]]
name = "bench"
keys = ["sha256:816adcba23292967efcb2e7dabc6a41077a064cfc02cadfe27c984e8812a8e04"]
models = ["*"]
TOML
  has capture && echo 'log_payloads = true'
  has limit && printf '[consumers.limits]\nrpm = 100000000\ntpm = 100000000000\nconcurrency = 100000\n'
} > tollgate-peer.toml
export BENCH_UPSTREAM_KEY=${BENCH_UPSTREAM_KEY:-sk-bench-upstream}
exec "$bin" -c tollgate-peer.toml
