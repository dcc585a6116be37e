#!/usr/bin/env bash
# Builds and installs the Python package for local use and for the tests:
#   1. cargo builds the sandbox CLI (target/debug/fieldreport), which the
#      tests start;
#   2. creates a venv (default bindings/python/build/venv, or $VENV) and
#      installs pytest and hypothesis into it (only there);
#   3. pip-installs this package into it: `pip install bindings/python`,
#      which is what a user runs too. pip fetches maturin, which builds the
#      release library, generates the uniffi module from it and makes the
#      wheel (see pyproject.toml).
# Then: bindings/python/build/venv/bin/python -m pytest bindings/python/tests
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="${VENV:-$here/build/venv}"

cd "$root"
cargo build --features cli --bin fieldreport

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet pytest hypothesis
# A local directory is rebuilt every time; --force-reinstall replaces the
# installed copy even though the version number did not change.
"${pip[@]}" install --quiet --force-reinstall --no-deps "$here"
"$venv/bin/python" -c 'import fieldreport; print("installed fieldreport", fieldreport.version(), "in", "'"$venv"'")'
