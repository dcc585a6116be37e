#!/usr/bin/env bash
# Builds bindings/swift/FieldReportFFI.xcframework: the Rust static library
# for iOS devices, the iOS simulator and macOS, with the uniffi C header and
# module map, for Package.swift's binary target.
#
#   bindings/swift/build-xcframework.sh          build the XCFramework
#   bindings/swift/build-xcframework.sh --zip    also zip it and print the
#                                                checksum for a url binaryTarget
#
# Needs macOS with Xcode (xcodebuild, lipo, clang), and rustup with:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#       aarch64-apple-darwin x86_64-apple-darwin
#
# UNTESTED: the project's machines are Linux without Xcode or Apple targets,
# so this script has never run there. See README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "build-xcframework.sh: $*" >&2; exit 1; }

zip=false
case "${1:-}" in
    "") ;;
    --zip) zip=true ;;
    *) die "unknown argument $1 (usage: build-xcframework.sh [--zip])" ;;
esac

# Fail early: this needs a Mac with Xcode and the Apple rust targets.
[[ "$(uname -s)" == Darwin ]] || die "this needs macOS with Xcode (xcodebuild, lipo); this is $(uname -s)"
for tool in xcodebuild lipo cargo rustup; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

ios=aarch64-apple-ios
sims=(aarch64-apple-ios-sim x86_64-apple-ios)
macs=(aarch64-apple-darwin x86_64-apple-darwin)
targets=("$ios" "${sims[@]}" "${macs[@]}")

installed=$(rustup target list --installed)
missing=()
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || missing+=("$t")
done
((${#missing[@]} == 0)) || die "rust targets missing; run: rustup target add ${missing[*]}"

headers_src="$here/Sources/FieldReportFFI/include"
[[ -f "$headers_src/FieldReportFFI.h" && -f "$headers_src/module.modulemap" ]] \
    || die "$headers_src lacks FieldReportFFI.h or module.modulemap: run bindings/generate.sh"

profile=release-small # Cargo.toml: opt-level "z", lto, panic = "unwind"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# Match Package.swift's platforms (used by rustc and by the cc crate for
# the C code of SQLite and ring).
export IPHONEOS_DEPLOYMENT_TARGET=13.0
export MACOSX_DEPLOYMENT_TARGET=10.15

cd "$root"
for t in "${targets[@]}"; do
    echo "== cargo: $t"
    # Only the staticlib (Cargo.toml's crate-type also lists cdylib and rlib).
    cargo rustc --lib --profile "$profile" --target "$t" --crate-type staticlib
done
lib() { echo "$target_dir/$1/$profile/libfieldreport.a"; }

stage="$target_dir/xcframework-staging"
rm -rf "$stage"
mkdir -p "$stage/ios" "$stage/ios-simulator" "$stage/macos" "$stage/headers"
cp "$(lib "$ios")" "$stage/ios/libfieldreport.a"
lipo -create "$(lib "${sims[0]}")" "$(lib "${sims[1]}")" -output "$stage/ios-simulator/libfieldreport.a"
lipo -create "$(lib "${macs[0]}")" "$(lib "${macs[1]}")" -output "$stage/macos/libfieldreport.a"
cp "$headers_src/FieldReportFFI.h" "$headers_src/module.modulemap" "$stage/headers/"

out="$here/FieldReportFFI.xcframework"
rm -rf "$out"
xcodebuild -create-xcframework \
    -library "$stage/ios/libfieldreport.a" -headers "$stage/headers" \
    -library "$stage/ios-simulator/libfieldreport.a" -headers "$stage/headers" \
    -library "$stage/macos/libfieldreport.a" -headers "$stage/headers" \
    -output "$out"
echo "built $out"

if $zip; then
    (cd "$here" && rm -f FieldReportFFI.xcframework.zip \
        && ditto -c -k --sequesterRsrc --keepParent FieldReportFFI.xcframework FieldReportFFI.xcframework.zip)
    echo "zipped $here/FieldReportFFI.xcframework.zip"
    if command -v swift >/dev/null; then
        echo "checksum: $(cd "$here" && swift package compute-checksum FieldReportFFI.xcframework.zip)"
    fi
fi
