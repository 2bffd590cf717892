#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The benchmark (issue 7; not part of the tests): pdckpt's C API and Python module against
# paddle.save/load, NumPy, safetensors and dd, interleaved and repeated.  Arguments go to
# bench/bench.py, e.g. `./run.sh bench --scale 0.25 --repeat 3`.  Writes bench/results.json,
# bench/chart.png and BENCHMARKS.md.  Loads are cold when it runs as root (drop_caches).
set -euo pipefail
source "$(dirname "$0")/env.sh"
ninja -C "$PDCKPT_BUILD" pdckpt_bench_c >/dev/null
exec "$PDCKPT_VENV/bin/python" "$PDCKPT_ROOT/bench/bench.py" "$@"
