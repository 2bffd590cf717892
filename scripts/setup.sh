#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what pdckpt needs on Debian 12, idempotently: the C toolchain and libraries (apt) and a
# Python venv with paddlepaddle (CPU), numpy, safetensors and pytest, plus one venv each for the
# older Paddles the interop tests judge against (2.6.2; 1.8.5 on a pyenv Python 3.7).  Runs apt
# only when a package is missing, and pip only when a venv's requirements file changed.
set -euo pipefail
source "$(dirname "$0")/env.sh"

APT_PACKAGES=(build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  libxxhash-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev
  libopenmpi-dev openmpi-bin python3-dev python3-venv python3-pip universal-ctags zsh groff-base)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A venv at $1 holding requirements file $2: created once (with interpreter $4, default the
# system Python 3), reinstalled only when the file changed (a copy of it is kept in the venv as a
# stamp).  $3 says what is being installed.
ensure_venv() {
  local venv="$1" reqs="$2" what="$3" python="${4:-/usr/bin/python3}"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating venv $venv ($python)"
    "$python" -m venv "$venv"
  fi
  if ! cmp -s "$reqs" "$venv/.pdckpt-requirements"; then
    echo "setup: installing $what into $venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$reqs"
    cp "$reqs" "$venv/.pdckpt-requirements"
  fi
}

# Prints a Python 3.7 that runs (a pyenv shim named python3.7 may exist but refuse to run when
# 3.7 is not the selected version): python3.7 on PATH, else pyenv's, else /root/.pyenv's.
find_python37() {
  local c
  for c in python3.7 "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.7.*/bin/python \
    /root/.pyenv/versions/3.7.*/bin/python; do
    if "$c" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 7))' >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

ensure_venv "$PDCKPT_VENV" "$PDCKPT_ROOT/requirements-dev.txt" \
  "Python packages (paddlepaddle, numpy, safetensors, pytest)"
# Paddle 2.6 (Python 3.11 wheels exist) in its own venv, for tests/py/test_paddle26_interop.py.
ensure_venv "$PDCKPT_VENV_PADDLE26" "$PDCKPT_ROOT/requirements-paddle26.txt" "paddlepaddle 2.6"
# Paddle 1.8.5 in its own venv, for tests/py/test_paddle18_interop.py.  Its wheels stop at
# Python 3.8 and Debian 12 ships 3.11, so the venv is made with a Python 3.7 from pyenv (or PATH).
if [[ ! -x "$PDCKPT_VENV_PADDLE18/bin/python" ]]; then
  if ! PYTHON37="$(find_python37)"; then
    echo "setup: Paddle 1.8 needs Python 3.7, and none was found (python3.7 on PATH," >&2
    echo "setup: \$(pyenv root)/versions/3.7.*, /root/.pyenv/versions/3.7.*)." >&2
    echo "setup: install one, e.g. 'pyenv install 3.7.16', and run scripts/setup.sh again." >&2
    exit 1
  fi
fi
ensure_venv "$PDCKPT_VENV_PADDLE18" "$PDCKPT_ROOT/requirements-paddle18.txt" "paddlepaddle 1.8.5" \
  "${PYTHON37:-}"
