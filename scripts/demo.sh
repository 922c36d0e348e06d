#!/usr/bin/env bash
# The main job on real input: set-up, then fio's version from inside a freshly
# booted Linux 7.x kernel.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
exec "${BUILD_DIR:-$here/build}/ktstr" shell -i fio --exec "fio --version"
