#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pdckpt's one entry point.  On a fresh Debian machine each command does its own set-up first
# (apt packages, the Python venv with paddlepaddle/numpy/pytest, the builds).
#   ./run.sh demo    build, then save / list / verify / reload a real checkpoint in every format
#   ./run.sh test    build (plain and ASan+UBSan), then run every test
#   ./run.sh setup | build | bench     the individual steps
#   ./run.sh fuzz [SECONDS] [TARGET...]  the fuzz campaign (clang, libFuzzer; scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
cmd="${1:-}"
shift || true
case "$cmd" in
  setup) scripts/setup.sh ;;
  build) scripts/setup.sh && scripts/build.sh ;;
  demo)  scripts/setup.sh && scripts/build.sh && scripts/demo.sh "$@" ;;
  test)  scripts/setup.sh && scripts/build.sh && scripts/test.sh "$@" ;;
  bench) scripts/setup.sh && scripts/build.sh && scripts/bench.sh "$@" ;;
  fuzz)  scripts/setup.sh && scripts/fuzz.sh "$@" ;;
  *) echo "usage: ./run.sh demo|test|setup|build|bench|fuzz" >&2; exit 2 ;;
esac
