#!/usr/bin/env bash
# Builds the Python package and runs its tests:
#   1. bindings/python/build.sh (cargo builds the cdylib and the sandbox CLI,
#      then a venv with the package, pytest and hypothesis: by default
#      bindings/python/build/venv, or $VENV);
#   2. that venv's pytest on bindings/python/tests.
#
#   bindings/python/run-tests.sh                 build, then pytest -q
#   bindings/python/run-tests.sh -k crash        extra arguments go to pytest
#
# CARGO_TARGET_DIR is honoured (by build.sh and by the tests, which look for
# the sandbox CLI there). Exits with pytest's status.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv="${VENV:-$here/build/venv}"

bash "$here/build.sh"
cd "$root"
exec "$venv/bin/python" -m pytest -q "$here/tests" "$@"
