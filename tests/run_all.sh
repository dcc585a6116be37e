#!/usr/bin/env bash
# Every test of the project: Rust (unit, integration, CLI), then each
# binding in its own language. Exits non-zero on the first failing suite.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Rust: unit, integration and CLI tests"
cargo test --features cli
