#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60), one after another, starting from the
# committed corpus (fuzz/corpus/<target>); new inputs go to fuzz/corpus-new/<target> (not
# committed). A finding stops the run with libFuzzer's report and a reproducer under
# fuzz/artifacts/<target>/.
#   bash fuzz/run.sh 600            # all targets, 10 minutes each
#   bash fuzz/run.sh 60 head sse    # some targets
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer needs nightly compiler flags;
# with only a stable toolchain, RUSTC_BOOTSTRAP=1 (set here) lets stable accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(head request sse translate_chunks translate_events config mcp admission)
fi
command -v cargo-fuzz >/dev/null || { echo "install cargo-fuzz: cargo install cargo-fuzz" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "corpus-new/$t"
  echo "== $t for ${seconds}s"
  cargo fuzz run --sanitizer none "$t" "corpus-new/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ *DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|ERROR|panicked)" || true
  if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
    echo "finding in $t: $(ls "artifacts/$t")" >&2
    exit 1
  fi
done
