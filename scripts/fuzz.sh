#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fuzz campaign (issue 8): builds every libFuzzer target with clang (the library and the
# target instrumented, ASan+UBSan) in build-fuzz/ and runs each for SECONDS with its seeds: the
# checked-in corpus, the regressions, the golden files and the real Paddle fixtures.  New inputs
# land in build-fuzz/corpus/<target>, crashes in build-fuzz/crashes/<target>/ (a fixed crash is
# added to fuzz/regressions/<target>, which the test command replays).  One line per target is
# appended to build-fuzz/campaign.tsv: date, target, seconds, executions, coverage, features,
# corpus size, crash files.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 1800 s, every target; FUZZ_JOBS=N in parallel)
set -euo pipefail
source "$(dirname "$0")/env.sh"
seconds="${1:-1800}"
shift || true
out="$PDCKPT_ROOT/build-fuzz"
CC=clang-14 CXX=clang++-14 cmake -S "$PDCKPT_ROOT" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPDCKPT_FUZZ=ON -DPDCKPT_BUILD_PYTHON=OFF -DPDCKPT_BUILD_TESTS=ON >/dev/null
ninja -C "$out" -j "$PDCKPT_JOBS" | grep -v '^\[' || true
mapfile -t targets < <(cd "$PDCKPT_ROOT/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
[[ $# -gt 0 ]] && targets=("$@")
fixtures="${PDCKPT_SHARED:-$PDCKPT_ROOT/../shared}/fixtures/real"

run_target() {
  local t="$1" work="$out/corpus/$1" crashes="$out/crashes/$1/" log="$out/logs/$1.log"
  mkdir -p "$work" "$crashes" "$out/logs"
  [[ -x "$out/fuzz/$t" ]] || { echo "$t: not built (clang with libFuzzer needed)" >&2; return 1; }
  # Seeds from every directory that exists (libFuzzer stops at a missing one: a target without
  # regressions yet ran for no time at all).
  local seeds=() d
  for d in "$PDCKPT_ROOT/fuzz/corpus/$t" "$PDCKPT_ROOT/fuzz/regressions/$t" \
    "$PDCKPT_ROOT/tests/golden" "$fixtures"; do [[ -d "$d" ]] && seeds+=("$d"); done
  "$out/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
    -print_final_stats=1 -artifact_prefix="$crashes" "$work" "${seeds[@]}" >"$log" 2>&1 || true
  local execs cov ft corp n_crash
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(find "$work" -type f | wc -l)
  n_crash=$(find "$crashes" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$seconds" "${execs:-?}" \
    "${cov:-?}" "${ft:-?}" "$corp" "$n_crash" | tee -a "$out/campaign.tsv"
  [[ -n "$execs" ]] || { echo "$t: ran no input (see $log)" >&2; return 1; }
}

export -f run_target
export out seconds fixtures PDCKPT_ROOT
printf '%s\n' "${targets[@]}" | xargs -P "${FUZZ_JOBS:-1}" -I{} bash -c 'run_target {}'
