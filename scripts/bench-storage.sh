#!/usr/bin/env bash
# Storage benchmarks: `cargo bench -p porter-storage` (criterion, crates/storage/benches/log.rs),
# then a one-line-per-bench summary of throughput. Takes about 3 minutes.
# Extra arguments go to criterion, e.g. `scripts/bench-storage.sh append/group` to filter.
# Logs are written under PORTER_BENCH_DIR (default target/tmp), which must be on the real disk.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT="$ROOT/target/bench-storage.log"
mkdir -p "$ROOT/target"
echo "==> cargo bench -p porter-storage --bench log (full output: $OUT)"
cargo bench -p porter-storage --bench log -- "$@" 2>&1 | tee "$OUT"

# Criterion prints the bench name, then `time: [lo mid hi]`, then `thrpt: [lo mid hi]`.
echo
echo "==> summary: throughput [low median high] of each bench"
awk '
    /^(append|read)\// { name = $1 }
    /thrpt:/ && name != "" {
        sub(/.*thrpt: +/, "")
        printf "%-44s %s\n", name, $0
        name = ""
    }
' "$OUT"
