#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The demo: a small MLP's weights and Adam moments, saved by the C API in every format, then
# listed, verified, reloaded and compared with the CLI.
set -euo pipefail
source "$(dirname "$0")/env.sh"
out="${1:-$PDCKPT_BUILD/demo}"
rm -rf "$out"
mkdir -p "$out"
echo "== saving an MLP + Adam state with the C API (examples/demo.c)"
"$PDCKPT_BUILD/examples/pdckpt_demo" "$out"
for f in "$out"/mlp.pdiparams "$out"/mlp_vars "$out"/mlp.safetensors; do
  echo "== pdckpt ls $f"
  "$PDCKPT_BIN" ls "$f"
  echo "== pdckpt verify $f"
  "$PDCKPT_BIN" verify "$f"
done
echo "== pdckpt diff: the three formats hold the same tensors"
"$PDCKPT_BIN" convert "$out/mlp_vars" "$out/from_vars.safetensors"
"$PDCKPT_BIN" diff "$out/mlp.safetensors" "$out/from_vars.safetensors"
for f in "$out"/mlp.pdparams "$out"/mlp.pdopt; do
  echo "== pdckpt ls $f   (what paddle.save would have written)"
  "$PDCKPT_BIN" ls "$f"
done
if [[ -x "$PDCKPT_VENV/bin/python" ]]; then
  echo "== real Paddle loads them to resume training"
  "$PDCKPT_VENV/bin/python" - "$out" <<'PY' 2>/dev/null
import sys, warnings
warnings.filterwarnings("ignore")
import paddle
d = sys.argv[1]
for f in ("mlp.pdparams", "mlp.pdopt", "mlp_fluid18.pdparams", "mlp_fluid18.pdopt"):
    sd = paddle.load(f"{d}/{f}")
    print(f"paddle.load({f}): {len(sd)} entries, e.g. {next(iter(sd))}")
PY
fi
echo "demo: OK"
