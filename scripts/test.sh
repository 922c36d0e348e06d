#!/usr/bin/env bash
# The whole test suite: set-up (packages, kernel, build; fast when done
# before), then every unit and VM test through CTest. Exits non-zero when any
# test fails. Extra arguments go to ctest (e.g. -L unit, -R fio).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
bash "$here/scripts/setup.sh"
cd "$build"
ctest --output-on-failure -j"${KTSTR_TEST_JOBS:-2}" "$@"
