#!/usr/bin/env bash
# Builds the Android packaging of fieldreport with cargo-ndk:
#
#   target/android/jniLibs/<abi>/libfieldreport.so   arm64-v8a, armeabi-v7a, x86_64
#   target/android/fieldreport-<version>.aar         AndroidManifest.xml, classes.jar
#                                                    (the generated Kotlin, compiled),
#                                                    jni/<abi>/libfieldreport.so,
#                                                    proguard.txt, R.txt
#
# Needs (see README.md): the Android NDK r25 or newer in ANDROID_NDK_HOME
# (its llvm-strip is used), `cargo install cargo-ndk`, the three rust
# targets, and Maven + a JDK (classes.jar; `jar` zips the AAR).
#
# The libraries are built with the mobile profile (release-small) and then
# stripped with `llvm-strip --strip-unneeded`. Stripping removes the uniffi
# metadata that binding generation reads, so only the copies placed in
# target/android are stripped, never cargo's own outputs, and the Kotlin
# that goes into the AAR is the committed file that bindings/generate.sh
# generated from the unstripped debug library.
#
# UNTESTED: the project's machines have no Android NDK, so this script has
# never run there past its checks. See README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "build-android.sh: $*" >&2; exit 1; }

abis=(arm64-v8a armeabi-v7a x86_64)
declare -A triple=(
    [arm64-v8a]=aarch64-linux-android
    [armeabi-v7a]=armv7-linux-androideabi
    [x86_64]=x86_64-linux-android
)
profile=release-small
min_sdk=21

# --- fail early: NDK, cargo-ndk, rust targets, Maven -------------------------
ndk="${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}"
[[ -n "$ndk" ]] || die "no Android NDK: set ANDROID_NDK_HOME to an NDK r25+ directory (see bindings/android/README.md)"
[[ -f "$ndk/source.properties" ]] || die "ANDROID_NDK_HOME=$ndk does not look like an NDK (no source.properties)"
ndk_major=$(sed -n 's/^Pkg.Revision *= *\([0-9]*\).*/\1/p' "$ndk/source.properties")
[[ "${ndk_major:-0}" -ge 25 ]] || die "NDK $ndk_major at $ndk is too old: Rust's Android targets need r25 or newer"
strip_tool=$(ls "$ndk"/toolchains/llvm/prebuilt/*/bin/llvm-strip 2>/dev/null | head -n1)
[[ -x "$strip_tool" ]] || die "llvm-strip not found under $ndk/toolchains/llvm/prebuilt/*/bin"

command -v cargo >/dev/null || die "cargo not found"
cargo ndk --version >/dev/null 2>&1 || die "cargo-ndk not found: cargo install cargo-ndk"
installed=$(rustup target list --installed 2>/dev/null || true)
missing=()
for abi in "${abis[@]}"; do
    grep -qx "${triple[$abi]}" <<<"$installed" || missing+=("${triple[$abi]}")
done
((${#missing[@]} == 0)) || die "rust targets missing; run: rustup target add ${missing[*]}"
command -v mvn >/dev/null || die "mvn not found (needed to compile the generated Kotlin into classes.jar)"
command -v jar >/dev/null || die "jar not found (a JDK is needed)"

generated="$root/bindings/kotlin/src/main/kotlin/com/fieldreport/fieldreport.kt"
[[ -f "$generated" ]] || die "$generated is missing: run bindings/generate.sh first (from the unstripped debug library)"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$target_dir/android"
rm -rf "$out"
mkdir -p "$out/jniLibs" "$out/aar"

# --- the native libraries ----------------------------------------------------
cd "$root"
targs=()
for abi in "${abis[@]}"; do targs+=(-t "$abi"); done
# `rustc --crate-type cdylib`, not `build`: with the three crate types of
# Cargo.toml, `build` makes the .so without LTO (rust-lang/cargo#4611).
# `--no-default-features`: no HTTP or TLS stack of its own; the app opens the
# client with `openWithTransport(config, HttpUrlConnectionTransport())`, and
# Android's own HTTP stack does the TLS (0.7 MB less, BENCHMARKS.md).
echo "== cargo ndk ${targs[*]} rustc --lib --profile $profile --crate-type cdylib --no-default-features"
cargo ndk "${targs[@]}" --platform "$min_sdk" rustc --lib --profile "$profile" --crate-type cdylib --no-default-features

for abi in "${abis[@]}"; do
    built="$target_dir/${triple[$abi]}/$profile/libfieldreport.so"
    [[ -f "$built" ]] || die "cargo ndk did not produce $built"
    mkdir -p "$out/jniLibs/$abi"
    cp "$built" "$out/jniLibs/$abi/libfieldreport.so"
    "$strip_tool" --strip-unneeded "$out/jniLibs/$abi/libfieldreport.so"
    echo "$abi: $(wc -c <"$out/jniLibs/$abi/libfieldreport.so") bytes (stripped)"
done

# --- classes.jar: the generated Kotlin, compiled by the Maven project ------------
echo "== mvn package (classes.jar)"
mvn -q -B -f "$root/bindings/kotlin/pom.xml" -DskipTests package
jar=$(ls "$root"/bindings/kotlin/target/fieldreport-*.jar | head -n1)
version=$(basename "$jar" .jar); version=${version#fieldreport-}

# --- the AAR -------------------------------------------------------------------
aar="$out/aar"
cp "$jar" "$aar/classes.jar"
cp -R "$out/jniLibs" "$aar/jni"
: >"$aar/R.txt"
cat >"$aar/AndroidManifest.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="com.fieldreport">
    <uses-sdk android:minSdkVersion="$min_sdk" />
    <uses-permission android:name="android.permission.INTERNET" />
</manifest>
EOF
# Consumer R8/ProGuard rules: JNA and the generated bindings use reflection.
cat >"$aar/proguard.txt" <<'EOF'
-dontwarn java.awt.*
-keep class com.sun.jna.** { *; }
-keepclassmembers class * extends com.sun.jna.** { public *; }
-keep class com.fieldreport.** { *; }
EOF
jar --create --no-manifest --file "$out/fieldreport-$version.aar" -C "$aar" .
echo "built $out/fieldreport-$version.aar"
