#!/usr/bin/env bash
# Builds what the Kotlin binding tests need and runs them on the JVM.
#
#   bindings/kotlin/run-tests.sh                 build, then mvn -q -B test
#   bindings/kotlin/run-tests.sh -Dtest='FieldReportTest#*crash*'
#                                                extra arguments go to Maven
#
# Needs: cargo, a JDK (17 here) and Maven on PATH; Maven Central reachable
# the first time (Maven downloads the Kotlin compiler plugin, kotlin-stdlib,
# JNA, JUnit 5 and Jackson into ~/.m2).
#
# What it builds: `cargo build --features cli`, which gives both the debug
# cdylib that JNA loads (target/debug/libfieldreport.so, without the uniffi
# bindgen feature) and the `fieldreport` CLI whose `sandbox` command the tests
# run as a local Centercode server. CARGO_TARGET_DIR is honoured.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "run-tests.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
command -v java >/dev/null || die "java not found (install a JDK 17, e.g. apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"

generated="$here/src/main/kotlin/com/fieldreport/fieldreport.kt"
[[ -f "$generated" ]] || die "$generated is missing: run bindings/generate.sh"
# uniffi 0.32 gives every Kotlin object AutoCloseable.close(); a UDL method
# named `close` then makes a second close() and the file does not compile.
if grep -q 'override fun close()' "$generated" && grep -q 'override fun `close`()' "$generated"; then
    die "the generated Kotlin declares close() twice (AutoCloseable's and the UDL's FieldReportClient.close) and cannot compile.
Rename the method for Kotlin in uniffi.toml:
    [bindings.kotlin.rename]
    \"FieldReportClient.close\" = \"shutdown\"
then run bindings/generate.sh."
fi

case "$(uname -s)" in
    Darwin) libfile=libfieldreport.dylib ;;
    *) libfile=libfieldreport.so ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}"
libdir="$target/debug"

echo "run-tests.sh: cargo build --features cli"
(cd "$root" && cargo build --features cli)
[[ -f "$libdir/$libfile" ]] || die "cargo did not produce $libdir/$libfile"
[[ -x "$libdir/fieldreport" ]] || die "cargo did not produce $libdir/fieldreport"

echo "run-tests.sh: mvn -q -B test"
# -q hides Maven's INFO lines; the Surefire logger is turned back up so that
# its "Tests run: N, Failures: F, Errors: E, Skipped: S" summary is shown.
# jansi.noreset: Debian's Maven 3.8 otherwise writes stray ESC[0m resets
# around its output even in batch mode.
export MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true"
cd "$here"
exec mvn -q -B \
    -Dstyle.color=never \
    -Dorg.slf4j.simpleLogger.log.org.apache.maven.plugin.surefire.SurefireMojo=info \
    -Dfieldreport.libdir="$libdir" \
    "$@" test
