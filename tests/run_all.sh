#!/usr/bin/env bash
# Every test of the project: Rust (unit, integration, CLI, the short
# reliability suites; the library and delivery tests again without TLS, the
# library and transport tests without any HTTP stack),
# the C header and the generated bindings checked for
# drift, then each binding in its own language: C (gcc and g++, static and
# shared, valgrind), Python (pytest) and Kotlin (JUnit on the JVM).
# Exits non-zero when any suite fails.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Rust: unit, integration, CLI and reliability tests"
cargo test --features cli

echo "== Rust with the builtin HTTP client but no TLS stack (feature rustls off: plain HTTP only)"
cargo test --no-default-features --features builtin-http,sandbox --lib --test delivery

echo "== Rust without an HTTP stack of its own (the mobile build: the app's transport only)"
cargo test --no-default-features --features sandbox --lib --test transport

echo "== Generated bindings match uniffi.udl"
# The drift test reads the cdylib beside the bindgen; `cargo test` alone
# does not link the cdylib.
cargo build --features uniffi-cli --lib --bin uniffi-bindgen
cargo test --features uniffi-cli --test bindings_drift

echo "== C ABI: C11 and C++17, static and shared, under valgrind"
bash tests/c/run.sh

echo "== Python bindings (pytest)"
bash bindings/python/build.sh
bindings/python/build/venv/bin/python -m pytest -q bindings/python/tests

echo "== Kotlin bindings (JUnit 5 on the JVM)"
bash bindings/kotlin/run-tests.sh

echo "== all suites passed"
