#!/usr/bin/env bash
# Builds and installs the Python package for local use and for the tests:
#   1. cargo builds the sandbox CLI (target/debug/fieldreport, used by the
#      tests) and the lean debug cdylib (no bindgen feature);
#   2. copies the cdylib next to the committed generated module in
#      src/fieldreport/;
#   3. creates a venv (default bindings/python/build/venv, or $VENV) and
#      pip-installs the package, pytest and hypothesis into it.
# Then: bindings/python/build/venv/bin/python -m pytest bindings/python/tests
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${CARGO_TARGET_DIR:-$root/target}"
venv="${VENV:-$here/build/venv}"

case "$(uname -s)" in
    Darwin) libfile=libfieldreport.dylib ;;
    *) libfile=libfieldreport.so ;;
esac

cd "$root"
cargo build --features cli --bin fieldreport
cargo build --lib
rm -f "$here"/src/fieldreport/libfieldreport.* "$here"/src/fieldreport/fieldreport.dll
cp "$target/debug/$libfile" "$here/src/fieldreport/$libfile"

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet pytest hypothesis
# A local directory is rebuilt every time; --force-reinstall replaces the
# installed copy even though the version number did not change.
"${pip[@]}" install --quiet --force-reinstall --no-deps "$here"
"$venv/bin/python" -c 'import fieldreport; print("installed fieldreport", fieldreport.version(), "in", "'"$venv"'")'
