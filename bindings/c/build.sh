#!/usr/bin/env bash
# Builds the C library and writes pkg-config files for it, so that a C or
# C++ program links with one line:
#
#   bindings/c/build.sh                   cargo build --release --lib
#   bindings/c/build.sh --debug           cargo build --lib (the dev profile)
#   bindings/c/build.sh --prefix DIR      the same, then installs under DIR
#   bindings/c/build.sh --no-build ...    only the pkg-config files (and the
#                                         install): the library is built
#
# Writes TARGET/PROFILE/pkgconfig/fieldreport.pc (shared library, with an
# rpath to TARGET/PROFILE so the program runs in place) and
# fieldreport-static.pc (static library). TARGET is $CARGO_TARGET_DIR or
# ./target; PROFILE is release or debug.
#
# --prefix DIR copies fieldreport.h to DIR/include, libfieldreport.a and
# libfieldreport.so to DIR/lib and the two .pc files (without rpath) to
# DIR/lib/pkgconfig.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "build.sh: $*" >&2; exit 1; }

profile=release
prefix=""
build=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --debug) profile=debug ;;
        --release) profile=release ;;
        --no-build) build=0 ;;
        --prefix)
            [[ $# -ge 2 && -n $2 ]] || die "--prefix needs a directory"
            prefix=$2
            shift
            ;;
        --prefix=*) prefix=${1#--prefix=} ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

case "$(uname -s)" in
    Darwin) shared=libfieldreport.dylib ;;
    *) shared=libfieldreport.so ;;
esac

cd "$root"
# cargo reads a relative CARGO_TARGET_DIR from where it runs: here, the root.
target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target="$root/$target"
libdir="$target/$profile"

if [[ $build == 1 ]]; then
    command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
    if [[ $profile == release ]]; then
        cargo build --release --lib
    else
        cargo build --lib
    fi
fi
for f in libfieldreport.a "$shared"; do
    [[ -f "$libdir/$f" ]] || die "$libdir/$f is missing: build it with
    cargo build --lib$([[ $profile == release ]] && echo ' --release')
(CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-unset})"
done

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || die "no version found in Cargo.toml"

# fill TEMPLATE OUT INCLUDEDIR LIBDIR RPATH
fill() {
    local esc_inc esc_lib
    # pkg-config splits on spaces unless they are escaped.
    esc_inc=${3// /\\ }
    esc_lib=${4// /\\ }
    sed -e "s|@INCLUDEDIR@|$esc_inc|g" -e "s|@LIBDIR@|$esc_lib|g" \
        -e "s|@VERSION@|$version|g" -e "s|@RPATH@|$5|g" "$1" >"$2"
}

pcdir="$libdir/pkgconfig"
mkdir -p "$pcdir"
fill "$here/fieldreport.pc.in" "$pcdir/fieldreport.pc" "$here" "$libdir" ' -Wl,-rpath,${libdir}'
fill "$here/fieldreport-static.pc.in" "$pcdir/fieldreport-static.pc" "$here" "$libdir" ''
echo "build.sh: pkg-config files for $libdir in $pcdir"

if [[ -n $prefix ]]; then
    mkdir -p "$prefix"
    prefix=$(cd "$prefix" && pwd)
    install -d "$prefix/include" "$prefix/lib/pkgconfig"
    install -m 644 "$here/fieldreport.h" "$prefix/include/fieldreport.h"
    install -m 644 "$libdir/libfieldreport.a" "$prefix/lib/libfieldreport.a"
    install -m 755 "$libdir/$shared" "$prefix/lib/$shared"
    # Installed, the library is found the usual way (ldconfig, or
    # LD_LIBRARY_PATH for a prefix outside the loader's path): no rpath.
    fill "$here/fieldreport.pc.in" "$prefix/lib/pkgconfig/fieldreport.pc" \
        "$prefix/include" "$prefix/lib" ''
    fill "$here/fieldreport-static.pc.in" "$prefix/lib/pkgconfig/fieldreport-static.pc" \
        "$prefix/include" "$prefix/lib" ''
    echo "build.sh: installed fieldreport.h, libfieldreport.a, $shared and the .pc files under $prefix"
    pcdir="$prefix/lib/pkgconfig"
fi

cat <<MSG
Link a program with them:
  export PKG_CONFIG_PATH="$pcdir"
  cc app.c \$(pkg-config --cflags --libs fieldreport) -o app          # shared
  cc app.c \$(pkg-config --cflags --libs fieldreport-static) -o app   # static
MSG
