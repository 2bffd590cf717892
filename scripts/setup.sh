#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what pdckpt needs on Debian 12, idempotently: the C toolchain and libraries (apt) and a
# Python venv with paddlepaddle (CPU), numpy, safetensors and pytest.  Runs apt only when a
# package is missing, and pip only when requirements-dev.txt changed.
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

# A venv at $1 holding requirements file $2: created once, reinstalled only when the file changed
# (a copy of it is kept in the venv as a stamp).  $3 says what is being installed.
ensure_venv() {
  local venv="$1" reqs="$2" what="$3"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating venv $venv"
    /usr/bin/python3 -m venv "$venv"
  fi
  if ! cmp -s "$reqs" "$venv/.pdckpt-requirements"; then
    echo "setup: installing $what into $venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$reqs"
    cp "$reqs" "$venv/.pdckpt-requirements"
  fi
}

ensure_venv "$PDCKPT_VENV" "$PDCKPT_ROOT/requirements-dev.txt" \
  "Python packages (paddlepaddle, numpy, safetensors, pytest)"
# Paddle 2.6 (Python 3.11 wheels exist; Paddle 1.8 has none for Python > 3.8 and Debian 12 ships
# 3.11 only, so 1.8 cannot be installed here) in its own venv, for tests/py/test_paddle26_interop.py.
ensure_venv "$PDCKPT_VENV_PADDLE26" "$PDCKPT_ROOT/requirements-paddle26.txt" "paddlepaddle 2.6"
