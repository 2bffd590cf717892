#!/usr/bin/env bash
# Crash-consistency campaign: N SIGKILL trials (default 1000), spread over the five kinds of target
# (tensor file, combined file, per-variable directory, .pdparams, combined + xxh3 sidecar), with the same checks as the test
# command (tests/py/test_crash_consistency.py): after every kill the target is byte-identical to
# the old or the new checkpoint and passes `pdckpt verify`; the next save leaves no temporaries.
#   usage: scripts/crash_campaign.sh [N] [SEED]     (needs ./scripts/build.sh first)
set -euo pipefail
source "$(dirname "$0")/env.sh"
N="${1:-1000}"
export PDCKPT_CRASH_TRIALS=$(( (N + 4) / 5 ))
export PDCKPT_CRASH_SEED="${2:-$RANDOM}"
echo "== crash campaign: 5 kinds x $PDCKPT_CRASH_TRIALS kills, seed $PDCKPT_CRASH_SEED"
"$PDCKPT_VENV/bin/python" -m pytest -q -s -p no:cacheprovider \
  "$PDCKPT_ROOT/tests/py/test_crash_consistency.py" -k test_sigkill 2>&1 | grep -E "kills|passed|failed|Error|assert"
