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

if [[ ! -x "$PDCKPT_VENV/bin/python" ]]; then
  echo "setup: creating venv $PDCKPT_VENV"
  /usr/bin/python3 -m venv "$PDCKPT_VENV"
fi
stamp="$PDCKPT_VENV/.pdckpt-requirements"
if ! cmp -s "$PDCKPT_ROOT/requirements-dev.txt" "$stamp"; then
  echo "setup: installing Python packages (paddlepaddle, numpy, safetensors, pytest)"
  "$PDCKPT_VENV/bin/pip" install -q --upgrade pip
  "$PDCKPT_VENV/bin/pip" install -q -r "$PDCKPT_ROOT/requirements-dev.txt"
  cp "$PDCKPT_ROOT/requirements-dev.txt" "$stamp"
fi

# Paddle 2.6 (Python 3.11 wheels exist; Paddle 1.8 has none for Python > 3.8 and Debian 12 ships
# 3.11 only, so 1.8 cannot be installed here) in its own venv, for tests/py/test_paddle26_interop.py.
if [[ ! -x "$PDCKPT_VENV_PADDLE26/bin/python" ]]; then
  echo "setup: creating venv $PDCKPT_VENV_PADDLE26 (Paddle 2.6)"
  /usr/bin/python3 -m venv "$PDCKPT_VENV_PADDLE26"
fi
stamp26="$PDCKPT_VENV_PADDLE26/.pdckpt-requirements"
if ! cmp -s "$PDCKPT_ROOT/requirements-paddle26.txt" "$stamp26"; then
  echo "setup: installing paddlepaddle 2.6 into $PDCKPT_VENV_PADDLE26"
  "$PDCKPT_VENV_PADDLE26/bin/pip" install -q -r "$PDCKPT_ROOT/requirements-paddle26.txt"
  cp "$PDCKPT_ROOT/requirements-paddle26.txt" "$stamp26"
fi
