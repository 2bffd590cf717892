#!/usr/bin/env bash
# Runs every test: the C unit/golden tests (plain and under ASan+UBSan), then the pytest suites
# (CLI, real fixtures, interop with real PaddlePaddle, crash tests).  Fails on the first failure.
set -euo pipefail
source "$(dirname "$0")/env.sh"
echo "== style checks (exports, layering, function and file length)"
"$PDCKPT_ROOT/tools/check_style.sh" "$PDCKPT_BUILD/libpdckpt.so"
echo "== C tests"
ctest --test-dir "$PDCKPT_BUILD" --output-on-failure -j "$PDCKPT_JOBS"
if [[ "${PDCKPT_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== C tests under ASan+UBSan"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$PDCKPT_BUILD_ASAN" --output-on-failure -j "$PDCKPT_JOBS"
fi
echo "== pytest"
# The pdckpt Python package built in-tree by scripts/build.sh (no install into the shared venv).
export PYTHONPATH="$PDCKPT_BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
"$PDCKPT_VENV/bin/python" -m pytest -q -p no:cacheprovider "$PDCKPT_ROOT/tests/py" "$@"
