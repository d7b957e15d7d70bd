#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after the other, from the seed
# corpora in fuzz/seeds/ (the working corpora grow in fuzz/corpus/, crashes land in
# fuzz/artifacts/). Needs the nightly toolchain; installs cargo-fuzz if it is missing.
#
#   scripts/fuzz.sh            # a minute per target
#   scripts/fuzz.sh 1800       # half an hour per target
#   scripts/fuzz.sh 60 client_core reply_parser   # only these
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-60}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(reply_parser scenario command_guard client_core client_pair lab_server)
fi

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo +nightly fuzz build -O

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "fuzz.sh: $target for ${seconds}s"
    cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 |
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE|==[0-9]+== ERROR|SUMMARY|Done)' || true
    if compgen -G "artifacts/$target/crash-*" >/dev/null; then
        echo "fuzz.sh: $target crashed; see fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz.sh: ok (${#targets[@]} target(s), ${seconds}s each)"
