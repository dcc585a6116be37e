#!/bin/sh
# Builds and runs the C ABI tests:
#   - builds the CLI (for `fieldreport sandbox`), then the library with
#     bindings/c/build.sh --debug (TARGET/debug/libfieldreport.{a,so} and
#     their pkg-config files; TARGET is $CARGO_TARGET_DIR or ./target);
#   - starts a Centercode and an ABC User Feedback sandbox on free ports;
#   - compiles tests/c/test_ffi.c and examples/c/example.c as C11
#     (-pedantic) and as C++17, each linked statically and dynamically;
#   - compiles the example with `pkg-config --cflags --libs` (fieldreport and
#     fieldreport-static, in place; fieldreport after build.sh --prefix);
#   - runs every binary, then the C and C++ tests and the example under
#     valgrind (no definite leaks, no invalid reads or writes).
# Each build, run and valgrind run is one step; the last line is
# "N passed, N failed". Exits non-zero when any step failed.
#
# Needs: cargo, gcc, g++, pkg-config, valgrind. Set SKIP_VALGRIND=1 to skip
# valgrind.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2

# cargo reads a relative CARGO_TARGET_DIR from where it runs: here, the root.
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in
    /*) ;;
    *) TARGET="$ROOT/$TARGET" ;;
esac
export CARGO_TARGET_DIR="$TARGET"

missing=""
for tool in cargo gcc g++ pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ "${SKIP_VALGRIND:-0}" != 1 ] && ! command -v valgrind >/dev/null 2>&1; then
    missing="$missing valgrind"
fi
if [ -n "$missing" ]; then
    echo "run.sh: not found on PATH:$missing"
    echo "  (Debian: apt-get install gcc g++ pkg-config valgrind; cargo from rustup;"
    echo "   SKIP_VALGRIND=1 runs without valgrind)"
    exit 2
fi

OUT="$TARGET/c-tests"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fieldreport-c-tests.XXXXXX")
SANDBOX_PIDS=""
passed=0
failed=0

cleanup() {
    for pid in $SANDBOX_PIDS; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"

# step NAME COMMAND...: runs COMMAND with its output in a log; prints the
# log only when it fails.
step() {
    name=$1
    shift
    log="$OUT/$(echo "$name" | tr ' /' '__').log"
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        summary=$(grep -E '^test_ffi: [0-9]+ passed' "$log" | tail -n 1)
        echo "ok    $name${summary:+  ($summary)}"
    else
        failed=$((failed + 1))
        echo "FAIL  $name"
        sed 's/^/      | /' "$log" | tail -n 60
    fi
}

# --- Build the library and the sandbox ----------------------------------------
# The CLI build comes first: the plain build after it leaves the library in
# target/debug built without the `cli` feature, as apps get it.
step "cargo build --features cli (sandbox)" cargo build --features cli --bin fieldreport
step "bindings/c/build.sh --debug (libfieldreport.a, .so, .pc)" bash bindings/c/build.sh --debug

LIBDIR="$TARGET/debug"
absent=""
for f in libfieldreport.a libfieldreport.so fieldreport pkgconfig/fieldreport.pc \
    pkgconfig/fieldreport-static.pc; do
    [ -e "$LIBDIR/$f" ] || absent="$absent $f"
done
if [ -n "$absent" ]; then
    echo "the build left these out of $LIBDIR:$absent; stopping"
    echo "  (CARGO_TARGET_DIR=${CARGO_TARGET_DIR}; see the FAIL lines above)"
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
fi

# --- Start the sandboxes on free ports (port 0: each picks one and prints it)
# start_sandbox KIND BANNER VAR: starts `fieldreport sandbox --kind KIND`,
# waits for its "BANNER listening at URL" line and sets VAR to the URL.
start_sandbox() {
    kind=$1
    banner=$2
    # Made first: the loop below may read it before the shell behind `&` has.
    : >"$WORK/sandbox-$kind.out"
    "$LIBDIR/fieldreport" sandbox --kind "$kind" --port 0 >"$WORK/sandbox-$kind.out" 2>&1 &
    pid=$!
    SANDBOX_PIDS="$SANDBOX_PIDS $pid"
    found=""
    i=0
    while [ $i -lt 100 ]; do
        found=$(sed -n "s/^$banner listening at \(http[^ ]*\).*/\1/p" "$WORK/sandbox-$kind.out")
        [ -n "$found" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$found" ]; then
        echo "the $kind sandbox did not start:"
        cat "$WORK/sandbox-$kind.out"
        echo "$passed passed, $((failed + 1)) failed"
        exit 1
    fi
    eval "$3=\$found"
    echo "$kind sandbox at $found"
}
URL=""
ABC_URL=""
start_sandbox centercode "Centercode sandbox" URL
start_sandbox abc "ABC User Feedback sandbox" ABC_URL

# --- Compile -----------------------------------------------------------------
CFLAGS="-std=c11 -Wall -Wextra -Werror -pedantic -g -I bindings/c"
CXXFLAGS="-std=c++17 -Wall -Wextra -Werror -g -I bindings/c"
STATIC="$LIBDIR/libfieldreport.a -lpthread -ldl -lm"
SHARED="-L$LIBDIR -lfieldreport -Wl,-rpath,$LIBDIR -lpthread"

for prog in tests/c/test_ffi.c examples/c/example.c; do
    base=$(basename "$prog" .c)
    # shellcheck disable=SC2086 # the flag lists are meant to split
    step "gcc C11 static: $base" gcc $CFLAGS "$prog" $STATIC -o "$OUT/${base}_c_static"
    step "gcc C11 shared: $base" gcc $CFLAGS "$prog" $SHARED -o "$OUT/${base}_c_shared"
    # `-x none` stops g++ reading the library as C++ source.
    step "g++ C++17 static: $base" g++ $CXXFLAGS -x c++ "$prog" -x none $STATIC -o "$OUT/${base}_cpp_static"
    step "g++ C++17 shared: $base" g++ $CXXFLAGS -x c++ "$prog" -x none $SHARED -o "$OUT/${base}_cpp_shared"
done

# One line, as the C README tells an app to do it: in place (shared with an
# rpath, and static), and from an install prefix.
PC_INPLACE="$LIBDIR/pkgconfig"
PREFIX="$WORK/prefix"
pc() {
    PKG_CONFIG_PATH="$1" pkg-config --cflags --libs "$2"
}
pc_build() {
    # shellcheck disable=SC2046 # pkg-config's output is meant to split
    gcc -std=c11 -Wall -Wextra -Werror examples/c/example.c $(pc "$1" "$2") -o "$3"
}
step "pkg-config fieldreport: example" pc_build "$PC_INPLACE" fieldreport "$OUT/example_pc_shared"
step "pkg-config fieldreport-static: example" pc_build "$PC_INPLACE" fieldreport-static "$OUT/example_pc_static"
step "bindings/c/build.sh --prefix (install)" bash bindings/c/build.sh --debug --no-build --prefix "$PREFIX"
step "pkg-config fieldreport (installed): example" pc_build "$PREFIX/lib/pkgconfig" fieldreport "$OUT/example_pc_installed"

# --- Run ---------------------------------------------------------------------
# run_test NAME BINARY [WRAPPER...]: each run gets a fresh directory.
run_test() {
    name=$1
    bin=$2
    shift 2
    dir=$(mktemp -d "$WORK/run.XXXXXX")
    step "$name" env FIELDREPORT_SANDBOX_URL="$URL" FIELDREPORT_ABC_SANDBOX_URL="$ABC_URL" \
        FIELDREPORT_TEST_DIR="$dir" "$@" "$bin"
}

run_example() {
    name=$1
    bin=$2
    shift 2
    dir=$(mktemp -d "$WORK/example.XXXXXX")
    step "$name" sh -c 'cd "$1" && shift && exec "$@"' sh "$dir" "$@" "$bin" "$URL" "$dir/outbox"
}

for variant in c_static c_shared cpp_static cpp_shared; do
    [ -x "$OUT/test_ffi_$variant" ] && run_test "run test_ffi ($variant)" "$OUT/test_ffi_$variant"
    [ -x "$OUT/example_$variant" ] && run_example "run example ($variant)" "$OUT/example_$variant"
done
for variant in pc_shared pc_static; do
    [ -x "$OUT/example_$variant" ] && run_example "run example ($variant)" "$OUT/example_$variant"
done
# Installed without an rpath: found through LD_LIBRARY_PATH, as from any
# prefix outside the loader's search path.
[ -x "$OUT/example_pc_installed" ] \
    && run_example "run example (pc_installed)" "$OUT/example_pc_installed" \
        env LD_LIBRARY_PATH="$PREFIX/lib"

if [ "${SKIP_VALGRIND:-0}" != 1 ]; then
    VALGRIND="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30"
    # shellcheck disable=SC2086
    for variant in c_static c_shared cpp_static; do
        [ -x "$OUT/test_ffi_$variant" ] && run_test "valgrind test_ffi ($variant)" "$OUT/test_ffi_$variant" $VALGRIND
    done
    # shellcheck disable=SC2086
    [ -x "$OUT/example_c_shared" ] && run_example "valgrind example (c_shared)" "$OUT/example_c_shared" $VALGRIND
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
