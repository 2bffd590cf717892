#!/usr/bin/env bash
# The crash-consistency campaign (issue 8 item 2): 1,000 SIGKILL trials (250 per format: single
# tensor file, combined params, .pdparams pickle, per-variable directory) with the optimised
# CLI; the summary lines go to stdout and build/crash-campaign.log.
#   scripts/crash_campaign.sh [TRIALS]      (default 1000)
set -euo pipefail
source "$(dirname "$0")/env.sh"
ninja -C "$PDCKPT_BUILD" -j "$PDCKPT_JOBS" cli/pdckpt >/dev/null
"$PDCKPT_ROOT/tests/crash/crash_cli.sh" "$PDCKPT_BIN" "$PDCKPT_SHARED/fixtures/real" \
  "${1:-1000}" | tee "$PDCKPT_BUILD/crash-campaign.log"
