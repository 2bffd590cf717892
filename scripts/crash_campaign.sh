#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crash-consistency campaign (issue 8 item 2, docs/RELIABILITY.md): N SIGKILL trials (default
# 1000) through each of the two harnesses the test command runs in short form:
#  - the C API (tests/py/test_crash_consistency.py): five kinds of target (tensor file, combined
#    file, per-variable directory, .pdparams, combined + xxh3 sidecar), N/5 each, seeded;
#  - the CLI (tests/crash/crash_cli.sh): `pdckpt convert` over four formats, N/4 each;
#  - sharded checkpoints (tests/py/test_dist.py): a 2-rank `pdckpt dist shard` job killed at a
#    random moment, N/5 trials (each starts an mpirun job: about 2 s a trial), and a 2-rank
#    re-save of one explicit id killed 100 times (PDCKPT_RESAVE_TRIALS; issue 20).
# After every kill the target is byte-identical to the old or the new checkpoint and passes
# `pdckpt verify`; the next save leaves no temporaries.  The CLI summary also goes to
# build/crash-campaign.log.
#   usage: scripts/crash_campaign.sh [N] [SEED]
set -euo pipefail
source "$(dirname "$0")/env.sh"
N="${1:-1000}"
ninja -C "$PDCKPT_BUILD" -j "$PDCKPT_JOBS" >/dev/null
export PDCKPT_CRASH_TRIALS=$(( (N + 4) / 5 ))
export PDCKPT_CRASH_SEED="${2:-$RANDOM}"
echo "== API harness: 5 kinds x $PDCKPT_CRASH_TRIALS kills, seed $PDCKPT_CRASH_SEED"
"$PDCKPT_VENV/bin/python" -m pytest -q -s -p no:cacheprovider \
  "$PDCKPT_ROOT/tests/py/test_crash_consistency.py" -k test_sigkill 2>&1 |
  grep -E "kills|passed|failed|Error|assert"
echo "== CLI harness: $N kills"
"$PDCKPT_ROOT/tests/crash/crash_cli.sh" "$PDCKPT_BIN" "$PDCKPT_SHARED/fixtures/real" "$N" |
  tee "$PDCKPT_BUILD/crash-campaign.log"
echo "== Sharded checkpoints: $PDCKPT_CRASH_TRIALS kills of a 2-rank job"
PDCKPT_SHARDED_CRASH_TRIALS="$PDCKPT_CRASH_TRIALS" "$PDCKPT_VENV/bin/python" -m pytest -q -s \
  -p no:cacheprovider "$PDCKPT_ROOT/tests/py/test_dist.py" -k random_points 2>&1 |
  grep -E "kills|passed|failed|Error|assert"
echo "== Re-saved id (issue 20): 100 kills of a 2-rank re-save of one explicit id"
PDCKPT_RESAVE_CRASH_TRIALS="${PDCKPT_RESAVE_TRIALS:-100}" "$PDCKPT_VENV/bin/python" -m pytest -q \
  -s -p no:cacheprovider "$PDCKPT_ROOT/tests/py/test_dist.py" -k resave_of_an_explicit_id 2>&1 |
  grep -E "kills|passed|failed|Error|assert"
