#!/usr/bin/env bash
# The whole benchmark: the library's size (tests/bench/size.sh, which builds
# the release-small cdylib), then every runtime figure beside its baseline
# (cargo bench). Prints one table and writes it, with a description of the
# machine, to target/bench/results.md.
#
#   bash tests/bench/run.sh            full run (under 10 minutes here)
#   bash tests/bench/run.sh --quick    CI smoke run (a minute or two, plus
#                                      the size build)
set -euo pipefail
cd "$(dirname "$0")/../.."
args=()
for arg in "$@"; do
  case "$arg" in
    --quick) export FIELDREPORT_BENCH_QUICK=1 ;;
    *) args+=("$arg") ;;
  esac
done
command -v curl >/dev/null || {
  echo "curl is needed for the upload baseline: apt-get install -y curl" >&2
  exit 1
}
bash tests/bench/size.sh
cargo bench --features sandbox --bench fieldreport -- "${args[@]}"
