#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test: the C unit/golden tests (plain and under ASan+UBSan), then the pytest suites
# (CLI, real fixtures, interop with real PaddlePaddle, crash tests).  Fails on the first failure.
set -euo pipefail
source "$(dirname "$0")/env.sh"
echo "== style checks (exports, layering, clang-format, function and file length)"
"$PDCKPT_ROOT/tools/check_style.sh" "$PDCKPT_BUILD/libpdckpt.so"
if [[ -f "$PDCKPT_BUILD/libpdckpt_mpi.so" ]]; then
  "$PDCKPT_ROOT/tools/check_style.sh" "$PDCKPT_BUILD/libpdckpt_mpi.so"
fi
echo "== C tests"
ctest --test-dir "$PDCKPT_BUILD" --output-on-failure -j "$PDCKPT_JOBS" -LE mpi
if [[ "${PDCKPT_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== C tests under ASan+UBSan"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$PDCKPT_BUILD_ASAN" --output-on-failure -j "$PDCKPT_JOBS" -LE mpi
fi
# Distributed tests: each is an `mpirun --oversubscribe` job of 1-4 ranks (label "mpi"), run one
# at a time so the ranks of one job have the machine to themselves.
echo "== MPI tests (mpirun --oversubscribe)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI 4.1 leaves a 6-8 MiB session directory in /tmp after many of the suite's mpirun jobs
# (test_dist.py alone: 28, 170 MiB; 18 GB had piled up here): they go in a directory of this
# run's own, removed when the script exits.
OMPI_MCA_orte_tmpdir_base="$(mktemp -d "${TMPDIR:-/tmp}/pdckpt-mpi-sessions.XXXXXX")"
export OMPI_MCA_orte_tmpdir_base
trap 'rm -rf "$OMPI_MCA_orte_tmpdir_base"' EXIT
ctest --test-dir "$PDCKPT_BUILD" --output-on-failure -j 1 -L mpi
if [[ "${PDCKPT_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== MPI tests under ASan+UBSan"
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$PDCKPT_BUILD_ASAN" --output-on-failure -j 1 -L mpi
fi
echo "== pytest"
# The pdckpt Python package built in-tree by scripts/build.sh (no install into the shared venv).
export PYTHONPATH="$PDCKPT_BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
"$PDCKPT_VENV/bin/python" -m pytest -q -p no:cacheprovider "$PDCKPT_ROOT/tests/py" "$@"
