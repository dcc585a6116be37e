#!/usr/bin/env bash
# Size of the shipped library, in its two builds, both with the
# `release-small` profile (the one recommended for mobile):
#   - the default build (features `rustls`: its own HTTP client and TLS
#     stack), for desktop apps, rigs and the Python wheel;
#   - the mobile build (`--no-default-features`: no HTTP stack of its own;
#     the app's transport sends, e.g. HttpUrlConnectionTransport on Android).
# Each is stripped as it would be shipped (strip --strip-unneeded; uniffi
# bindings are generated from an unstripped build) and reported in bytes and
# gzip -9 bytes. Writes target/bench/size.tsv, which `cargo bench --bench
# fieldreport` reads back.
#
#   bash tests/bench/size.sh            measure and print
#   bash tests/bench/size.sh --check    also fail if either gzip size is above
#                                       its ceiling (CI)
#   bash tests/bench/size.sh --bloat    also print what each crate costs
#                                       (cargo bloat --crates; installs
#                                       cargo-bloat from crates.io if missing;
#                                       builds in target/size-bloat)
#   bash tests/bench/size.sh --no-tls   also build the builtin HTTP client
#                                       without the bundled TLS stack (plain
#                                       HTTP only), in target/size-notls, and
#                                       print that size
#   bash tests/bench/size.sh --full-sqlite
#                                       also build with libsqlite3-sys's
#                                       default options (LIBSQLITE3_FLAGS
#                                       empty), in target/size-full, and
#                                       print that size for comparison. The
#                                       shipped build compiles SQLite's unused
#                                       parts out: .cargo/config.toml.
#
# The ceilings are set just above the sizes measured when they were last
# reviewed; raise them deliberately, in review, never to make CI pass.
# Override for an experiment with FIELDREPORT_SIZE_CEILING_GZ=<bytes> (the
# default build) and FIELDREPORT_MOBILE_CEILING_GZ=<bytes>.
set -euo pipefail
cd "$(dirname "$0")/../.."

CEILING_GZ=${FIELDREPORT_SIZE_CEILING_GZ:-1699000}
MOBILE_CEILING_GZ=${FIELDREPORT_MOBILE_CEILING_GZ:-992000}
PROFILE=release-small
check=0
bloat=0
full_sqlite=0
no_tls=0
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    --bloat) bloat=1 ;;
    --full-sqlite) full_sqlite=1 ;;
    --no-tls) no_tls=1 ;;
    *) echo "usage: $0 [--check] [--bloat] [--full-sqlite] [--no-tls]" >&2; exit 2 ;;
  esac
done

target_dir=${CARGO_TARGET_DIR:-target}
host=$(rustc -vV | sed -n 's/^host: //p')
# `cargo rustc --crate-type cdylib`, not `cargo build`: with the three crate
# types of Cargo.toml (lib, cdylib, staticlib) cargo builds them in one rustc
# call without LTO (an rlib cannot take it; rust-lang/cargo#4611), whatever
# the profile says. Built alone, the cdylib gets the profile's fat LTO.
build=(cargo rustc --lib --profile "$PROFILE" --crate-type cdylib)
out="$target_dir/bench"
mkdir -p "$out"

# Runs a build command (an environment can be given with `env`) with its
# target dir set to DIR, strips a copy of the library it made to
# $out/libfieldreport.NAME.so and sets BYTES, GZ and UNSTRIPPED.
measure() {
  local name=$1 dir=$2
  shift 2
  echo "== $* (host $host, target dir $dir)" >&2
  CARGO_TARGET_DIR="$dir" "$@" >&2
  local so="$dir/$PROFILE/libfieldreport.so"
  [ -f "$so" ] || { echo "no $so after the build" >&2; exit 1; }
  strip --strip-unneeded -o "$out/libfieldreport.$name.so" "$so"
  BYTES=$(stat -c %s "$out/libfieldreport.$name.so")
  GZ=$(gzip -9 -c "$out/libfieldreport.$name.so" | wc -c)
  UNSTRIPPED=$(stat -c %s "$so")
}

# The two shipped builds share the target dir. The mobile build first, so
# that the default build's .so is the one left in place for whoever reads
# it next.
measure mobile "$target_dir" "${build[@]}" --no-default-features
mobile_bytes=$BYTES mobile_gz=$GZ mobile_unstripped=$UNSTRIPPED
measure default "$target_dir" "${build[@]}"
bytes=$BYTES gz=$GZ unstripped=$UNSTRIPPED
stripped="$out/libfieldreport.default.so"

{
  printf 'target\t%s\n' "$host"
  printf 'profile\t%s\n' "$PROFILE"
  printf 'unstripped_bytes\t%s\n' "$unstripped"
  printf 'stripped_bytes\t%s\n' "$bytes"
  printf 'gzip_bytes\t%s\n' "$gz"
  printf 'ceiling_gzip_bytes\t%s\n' "$CEILING_GZ"
  printf 'mobile_unstripped_bytes\t%s\n' "$mobile_unstripped"
  printf 'mobile_stripped_bytes\t%s\n' "$mobile_bytes"
  printf 'mobile_gzip_bytes\t%s\n' "$mobile_gz"
  printf 'mobile_ceiling_gzip_bytes\t%s\n' "$MOBILE_CEILING_GZ"
} > "$out/size.tsv"

printf 'libfieldreport.so (%s, %s), default build: %s bytes unstripped, %s bytes stripped, %s bytes gzip -9 (ceiling %s)\n' \
  "$host" "$PROFILE" "$unstripped" "$bytes" "$gz" "$CEILING_GZ"
printf 'libfieldreport.so (%s, %s), mobile build (no HTTP stack of its own): %s bytes unstripped, %s bytes stripped, %s bytes gzip -9 (ceiling %s)\n' \
  "$host" "$PROFILE" "$mobile_unstripped" "$mobile_bytes" "$mobile_gz" "$MOBILE_CEILING_GZ"

# Measures a variant of the library in its own target dir and prints its
# size beside the default build's.
variant() {
  local label=$1 name=$2 dir=$3
  shift 3
  measure "$name" "$dir" "$@"
  printf '%s: %s bytes stripped (%+d), %s bytes gzip -9 (%+d)\n' \
    "$label" "$BYTES" $((BYTES - bytes)) "$GZ" $((GZ - gz))
}

if [ "$full_sqlite" = 1 ]; then
  # An empty value set in the environment wins over .cargo/config.toml.
  variant "with the full SQLite" full-sqlite target/size-full \
    env LIBSQLITE3_FLAGS="" "${build[@]}"
fi

if [ "$no_tls" = 1 ]; then
  variant "without TLS" no-tls target/size-notls \
    "${build[@]}" --no-default-features --features builtin-http
fi

if [ "$bloat" = 1 ]; then
  command -v cargo-bloat >/dev/null || cargo install --locked cargo-bloat >&2
  # Its own target dir: cargo bloat builds with other flags, and sharing
  # target/ would make the next plain build start over.
  echo "== cargo bloat --lib --profile $PROFILE --crates (.text only; SQLite's C code is [Unknown])"
  CARGO_TARGET_DIR=target/size-bloat cargo bloat --lib --profile "$PROFILE" --crates -n 0
  echo "== sections of the stripped library (size -A)"
  size -A "$stripped" | awk 'NR > 2 && $2 > 4096 { printf "%-20s %9d\n", $1, $2 }' | sort -k2 -n -r
fi

if [ "$check" = 1 ]; then
  failed=0
  if [ "$gz" -gt "$CEILING_GZ" ]; then
    echo "FAIL: the gzip-compressed default build is $gz bytes, above its ceiling of $CEILING_GZ" >&2
    failed=1
  fi
  if [ "$mobile_gz" -gt "$MOBILE_CEILING_GZ" ]; then
    echo "FAIL: the gzip-compressed mobile build is $mobile_gz bytes, above its ceiling of $MOBILE_CEILING_GZ" >&2
    failed=1
  fi
  exit "$failed"
fi
