#!/bin/sh
# Regenerates bindings/c/fieldreport.h from src/ffi/ with cbindgen.toml, using
# the cbindgen version pinned in Cargo.toml (through tests/c_header.rs), so
# the result is byte-for-byte what the drift check expects.
set -eu
cd "$(dirname "$0")/../.."
FIELDREPORT_BLESS_HEADER=1 cargo test --quiet --test c_header committed_header_matches_the_sources
echo "bindings/c/fieldreport.h regenerated; review the diff and commit it."
