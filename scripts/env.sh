# SPDX-License-Identifier: Apache-2.0
# Shared settings for the scripts (sourced).  Every path can be overridden from the environment,
# so worktrees can share one venv and CI can point at its own shared/ directory.
PDCKPT_ROOT="${PDCKPT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export PDCKPT_ROOT
export PDCKPT_VENV="${PDCKPT_VENV:-$PDCKPT_ROOT/.venv}"
# Paddle 2.6 for the older-Paddle interop tests (scripts/setup.sh makes it beside the main venv).
export PDCKPT_VENV_PADDLE26="${PDCKPT_VENV_PADDLE26:-$PDCKPT_VENV-paddle26}"
# Paddle 1.8.5 on Python 3.7 (pyenv), likewise.
export PDCKPT_VENV_PADDLE18="${PDCKPT_VENV_PADDLE18:-$PDCKPT_VENV-paddle18}"
export PDCKPT_BUILD="${PDCKPT_BUILD:-$PDCKPT_ROOT/build}"
export PDCKPT_BUILD_ASAN="${PDCKPT_BUILD_ASAN:-$PDCKPT_ROOT/build-asan}"
export PDCKPT_SHARED="${PDCKPT_SHARED:-$(cd "$PDCKPT_ROOT/.." && pwd)/shared}"
export PDCKPT_BIN="${PDCKPT_BIN:-$PDCKPT_BUILD/cli/pdckpt}"
export PDCKPT_JOBS="${PDCKPT_JOBS:-$(nproc)}"
