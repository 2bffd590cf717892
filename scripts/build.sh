#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the library, CLI and tests twice: optimised with debug info, and with ASan+UBSan.  The
# optimised build also builds the Python extension against the venv's Python and stages an
# importable package in $PDCKPT_BUILD/python (the tests put it first on sys.path).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cmake -S "$PDCKPT_ROOT" -B "$PDCKPT_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPDCKPT_BUILD_PYTHON=ON -DPython_EXECUTABLE="$PDCKPT_VENV/bin/python" >/dev/null
ninja -C "$PDCKPT_BUILD" -j "$PDCKPT_JOBS" | grep -v '^\[' || true
test -x "$PDCKPT_BIN"
if [[ "${PDCKPT_SKIP_ASAN:-0}" != 1 ]]; then
  cmake -S "$PDCKPT_ROOT" -B "$PDCKPT_BUILD_ASAN" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DPDCKPT_SANITIZE=ON >/dev/null
  ninja -C "$PDCKPT_BUILD_ASAN" -j "$PDCKPT_JOBS" | grep -v '^\[' || true
fi
