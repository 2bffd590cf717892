#!/usr/bin/env bash
set -euo pipefail
source "$(dirname "$0")/env.sh"
echo "bench: not yet implemented (issue 7)" >&2
exit 2
