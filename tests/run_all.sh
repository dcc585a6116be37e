#!/usr/bin/env bash
# Every test of the project: Rust (unit, integration, CLI, the short
# reliability suites; the library and delivery tests again without TLS, the
# library and transport tests without any HTTP stack),
# the C header and the generated bindings checked for
# drift, then each binding in its own language: C (gcc and g++, static and
# shared, valgrind), Python (pytest) and Kotlin (JUnit on the JVM).
#
# Every suite runs, whatever the others did: a suite stops at its own first
# failing command, the next suite starts anyway. At the end, one line per
# suite under "== summary", then "N passed, M failed" (counting suites).
# Exits non-zero when any suite failed.
set -uo pipefail
cd "$(dirname "$0")/.."
# Ctrl-C stops the whole run, not only the suite under way.
trap 'exit 130' INT TERM

# One function per suite; each runs in a subshell with `set -e`, so a suite
# ends at its first failing command.

suite_rust() {
    cargo test --features cli
}

suite_rust_no_tls() {
    cargo test --no-default-features --features builtin-http,sandbox --lib --test delivery
}

suite_rust_no_http() {
    cargo test --no-default-features --features sandbox --lib --test transport
}

suite_bindings_drift() {
    # The drift test reads the cdylib beside the bindgen; `cargo test` alone
    # does not link the cdylib.
    cargo build --features uniffi-cli --lib --bin uniffi-bindgen
    cargo test --features uniffi-cli --test bindings_drift
}

suite_c() {
    bash tests/c/run.sh
}

suite_python() {
    bash bindings/python/run-tests.sh
}

suite_kotlin() {
    bash bindings/kotlin/run-tests.sh
}

results=()
passed=0
failed=0

# run_suite TITLE FUNCTION
run_suite() {
    local title=$1 fn=$2 start rc
    echo "== $title"
    start=$SECONDS
    # Not in an `if`: there bash would ignore the subshell's `set -e`.
    (
        set -e
        "$fn"
    )
    rc=$?
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
        results+=("passed  $title ($((SECONDS - start)) s)")
    else
        failed=$((failed + 1))
        results+=("FAILED  $title (exit $rc, $((SECONDS - start)) s)")
    fi
}

run_suite "Rust: unit, integration, CLI and reliability tests" suite_rust
run_suite "Rust with the builtin HTTP client but no TLS stack (feature rustls off: plain HTTP only)" suite_rust_no_tls
run_suite "Rust without an HTTP stack of its own (the mobile build: the app's transport only)" suite_rust_no_http
run_suite "Generated bindings match uniffi.udl" suite_bindings_drift
run_suite "C ABI: C11 and C++17, static and shared, under valgrind" suite_c
run_suite "Python bindings (pytest)" suite_python
run_suite "Kotlin bindings (JUnit 5 on the JVM)" suite_kotlin

echo "== summary"
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
