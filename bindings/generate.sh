#!/usr/bin/env bash
# Regenerates the committed uniffi bindings (Swift, Kotlin, Python) in
# library mode from the debug cdylib, with the project's own uniffi-bindgen.
#
#   bindings/generate.sh            regenerate into the work tree
#   bindings/generate.sh OUT_ROOT   write the same layout under OUT_ROOT
#                                   (tests/bindings_drift.rs does this)
#
# Environment (both optional; when unset the script builds them):
#   FIELDREPORT_CDYLIB  the built library to read (must not be stripped)
#   UNIFFI_BINDGEN      the uniffi-bindgen binary to run
#
# Layout written (relative to OUT_ROOT, default the repository root):
#   bindings/python/src/fieldreport/_ffi/fieldreport.py (the wheel's build
#     generates the same file again from the library it ships: maturin)
#   bindings/kotlin/src/main/kotlin/com/fieldreport/fieldreport.kt
#   bindings/swift/Sources/FieldReport/FieldReport.swift
#   bindings/swift/Sources/FieldReportFFI/include/FieldReportFFI.h
#   bindings/swift/Sources/FieldReportFFI/include/module.modulemap
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"

case "$(uname -s)" in
    Darwin) libfile=libfieldreport.dylib ;;
    *) libfile=libfieldreport.so ;;
esac

target="${CARGO_TARGET_DIR:-$root/target}"

bindgen=${UNIFFI_BINDGEN:-}
if [[ -z "$bindgen" ]]; then
    cargo build --features uniffi-cli --bin uniffi-bindgen
    bindgen="$target/debug/uniffi-bindgen"
fi

lib=${FIELDREPORT_CDYLIB:-}
if [[ -z "$lib" ]]; then
    # The lean debug cdylib, built without the bindgen feature. Built after
    # the bindgen, whose build leaves a cdylib linking the whole generator
    # (66 MB) in its place; bindings come out the same from either.
    cargo build --lib
    lib="$target/debug/$libfile"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gen() {
    local language=$1
    "$bindgen" generate "$lib" --language "$language" --no-format \
        --metadata-no-deps --out-dir "$tmp/$language" >/dev/null
}

gen python
gen kotlin
gen swift

py="$out/bindings/python/src/fieldreport/_ffi"
kt="$out/bindings/kotlin/src/main/kotlin"
swift="$out/bindings/swift/Sources/FieldReport"
ffi="$out/bindings/swift/Sources/FieldReportFFI/include"
mkdir -p "$py" "$kt/com/fieldreport" "$swift" "$ffi"

cp "$tmp/python/fieldreport.py" "$py/fieldreport.py"
cp "$tmp/kotlin/com/fieldreport/fieldreport.kt" "$kt/com/fieldreport/fieldreport.kt"
cp "$tmp/swift/FieldReport.swift" "$swift/FieldReport.swift"
cp "$tmp/swift/FieldReportFFI.h" "$ffi/FieldReportFFI.h"
# SwiftPM wants a C target's custom module map named module.modulemap.
cp "$tmp/swift/FieldReportFFI.modulemap" "$ffi/module.modulemap"

# Anything else the generator wrote is unexpected: say so rather than drop it.
unexpected=$(cd "$tmp" && find . -type f \
    ! -path ./python/fieldreport.py \
    ! -path ./kotlin/com/fieldreport/fieldreport.kt \
    ! -path ./swift/FieldReport.swift \
    ! -path ./swift/FieldReportFFI.h \
    ! -path ./swift/FieldReportFFI.modulemap)
if [[ -n "$unexpected" ]]; then
    echo "generate.sh: the generator wrote files this script does not place:" >&2
    echo "$unexpected" >&2
    exit 1
fi
echo "bindings generated under $out/bindings"
