#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 20's distributed numbers, one run (bench/NOTES.md "Sharded checkpoints at scale"):
#   1. sharded save / load / resharded load of 4 ranks x PIECES tiny 1-D pieces, PIECES from
#      8,000 to 64,000 (tests/unit/test_dist_scale.c --json), and the growth 8,000 -> 64,000;
#   2. gather-to-rank-0 vs the MPI-IO single-file write of the same state, and the writer's
#      peak RSS growth with the default group size and with max_grouped_size=1M
#      (bench/dist_gather.c);
#   3. resharded loads (shifted row bands, column bands, a block grid) vs the same-topology load
#      of 8 row-split 2048 x 2048 float32 tensors, copy path and zero-copy (bench/dist_reshard.c);
#   4. the metadata's decode at 8,000, 64,000 and 256,000 pieces: time and peak memory of the
#      load's (straight into the index), of the keys `dist merge` reads (the same decode) and of
#      the whole tree `ls` reads (bench/dist_meta.c).
# The 100 kills of a re-saved id are scripts/crash_campaign.sh's last stage.
# Usage: bench/dist_scale.sh [RANKS] [PIECES...]   (build first: scripts/build.sh)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ranks="${1:-4}"
shift || true
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(8000 16000 32000 64000)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== sharded checkpoints: $ranks ranks"
out="$work/scale.jsonl"
for n in "${sizes[@]}"; do
  rm -rf "$work/ck"
  mpirun -n "$ranks" --oversubscribe "$PDCKPT_BUILD/tests/test_dist_scale" "$n" --json \
    --dir "$work/ck" | grep '^{' | tee -a "$out"
done
"$PDCKPT_VENV/bin/python" - "$out" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
first, last = rows[0], rows[-1]
grow = last["pieces"] / first["pieces"]
for k in ("save_s", "load_s", "reshard_s"):
    print(f"{k}: {first[k]:.2f} s at {first['pieces']} pieces -> {last[k]:.2f} s at "
          f"{last['pieces']}: x{last[k] / first[k]:.1f} for x{grow:.0f} pieces")
PY
echo "== gather to rank 0 vs MPI-IO single file ($ranks ranks)"
mpirun -n "$ranks" --oversubscribe "$PDCKPT_BUILD/bench/pdckpt_bench_dist_gather" "$work" \
  "${PDCKPT_GATHER_MIB:-64}" "${PDCKPT_GATHER_TENSOR_MIB:-4}"
echo "== resharded loads vs the same-topology load ($ranks ranks)"
mpirun -n "$ranks" --oversubscribe "$PDCKPT_BUILD/bench/pdckpt_bench_dist_reshard" "$work/rs" \
  "${PDCKPT_RESHARD_TENSORS:-8}" "${PDCKPT_RESHARD_ROWS:-2048}" "${PDCKPT_RESHARD_COLS:-2048}"
echo "== the metadata's decode: into the index, into the tree"
mkdir -p "$work/meta"
"$PDCKPT_BUILD/bench/pdckpt_bench_dist_meta" "$work/meta"
