#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# crash_cli.sh — crash-consistency harness (issue 8 item 2, docs/RELIABILITY.md "Crash
# consistency").  Kills `pdckpt convert` with SIGKILL at a random moment while it replaces a
# checkpoint, then checks that the target holds the complete old or the complete new checkpoint
# (byte comparison with both candidates + `pdckpt verify`), and that the next uninterrupted save
# leaves no temporary file behind.  Formats: single tensor file, combined params, .pdparams
# pickle, per-variable directory.  The target alternates between the two candidates, so every
# trial replaces one complete checkpoint by a different one.
#   tests/crash/crash_cli.sh PDCKPT_BIN FIXTURES_DIR [TRIALS] [WORKDIR]
# Prints per format and in total: trials, kills that kept the previous checkpoint / left the
# replacement complete (kept / replaced), kills that left temps,
# torn (neither candidate), debris after the next save.  Exits 1 when torn or debris is not 0.
set -uo pipefail
bin="$1" fx="$2" trials="${3:-200}" work="${4:-}"
[[ -x "$bin" && -d "$fx" ]] || { echo "usage: $0 PDCKPT_BIN FIXTURES_DIR [TRIALS] [WORKDIR]" >&2; exit 2; }
# Seeded kill moments (PDCKPT_CRASH_SEED, as tests/py/test_crash_consistency.py): a failure can be
# replayed (the moments still shift with the machine's speed, which sets the span).
seed="${PDCKPT_CRASH_SEED:-8}"
RANDOM=$seed
if [[ -z "$work" ]]; then work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"

# name | old source | new source | output name | extra convert options (old ; new)
cases=(
  "tensor|$fx/fit_a_line-sepfiles-2019-05/fc_0.w_0|$fx/hand-writing-sepfiles-paddle2.1.0/fc_0.w_0|t.tensor|--to tensor|--to tensor"
  "combined|$fx/paddle.save-2022-12-proto4/model.pdparams|$fx/hand-writing-sepfiles-paddle2.1.0|m.pdiparams|--to combined|--to combined"
  "pickle|$fx/paddle.save-2022-12-proto4/model.pdparams|$fx/paddle.save-2022-12-proto4/model.pdparams|m.pdparams|--protocol 2|--protocol 4"
  "vars-dir|$fx/paddle.save-2022-12-proto4/model.pdparams|$fx/hand-writing-sepfiles-paddle2.1.0|vars|--to vars-dir|--to vars-dir"
)

# A content digest of a file or a whole directory tree (names and bytes).
digest() {
  if [[ -d "$1" ]]; then (cd "$1" && find . -type f | LC_ALL=C sort | xargs -r sha256sum | sha256sum)
  elif [[ -f "$1" ]]; then sha256sum <"$1"
  else echo missing; fi
}
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

total=0 torn=0 debris=0
for c in "${cases[@]}"; do
  IFS='|' read -r fmt src_old src_new out opt_old opt_new <<<"$c"
  dir="$work/$fmt"; rm -rf "$dir"; mkdir -p "$dir/ref-old" "$dir/ref-new" "$dir/t"
  # Reference bytes of a completed save of each candidate.
  "$bin" convert "$src_old" "$dir/ref-old/$out" $opt_old >/dev/null || exit 1
  "$bin" convert "$src_new" "$dir/ref-new/$out" $opt_new >/dev/null || exit 1
  d_old=$(digest "$dir/ref-old/$out") d_new=$(digest "$dir/ref-new/$out")
  [[ "$d_old" != "$d_new" ]] || { echo "$fmt: candidates are identical" >&2; exit 1; }
  "$bin" convert "$src_old" "$dir/t/$out" $opt_old >/dev/null || exit 1
  t0=$(now_us); "$bin" convert "$src_new" "$dir/t/$out" $opt_new >/dev/null; t1=$(now_us)
  span=$(( (t1 - t0) * 13 / 10 + 1 ))        # kills spread over 1.3 × one save's duration
  cur=new n=$((trials / ${#cases[@]})) k_old=0 k_new=0 k_tmp=0 k_torn=0 k_debris=0
  for ((i = 0; i < n; i++)); do
    if [[ $cur == new ]]; then s="$src_old" o="$opt_old" want=old; else s="$src_new" o="$opt_new" want=new; fi
    delay=$(( (RANDOM * 32768 + RANDOM) % span ))
    "$bin" convert "$s" "$dir/t/$out" $o >/dev/null 2>&1 &
    pid=$!
    sleep "$(printf '%d.%06d' $((delay / 1000000)) $((delay % 1000000)))"
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    got=$(digest "$dir/t/$out")
    if [[ $got == "$d_old" ]]; then cur=old
    elif [[ $got == "$d_new" ]]; then cur=new
    else cur=torn; fi
    if [[ $cur == "$want" ]]; then k_new=$((k_new + 1))
    elif [[ $cur != torn ]]; then k_old=$((k_old + 1))
    else k_torn=$((k_torn + 1)); echo "TORN: $fmt trial $i (delay ${delay}us)" >&2
      cp -a "$dir/t/$out" "$work/torn-$fmt-$i" 2>/dev/null; cur=old
      "$bin" convert "$src_old" "$dir/t/$out" $opt_old >/dev/null; fi
    "$bin" verify "$dir/t/$out" >/dev/null 2>&1 || { k_torn=$((k_torn + 1)); echo "VERIFY FAILED: $fmt trial $i" >&2; }
    [[ $(ls -A "$dir/t" | wc -l) -gt 1 ]] && k_tmp=$((k_tmp + 1))
    # The next uninterrupted save must sweep the killed save's temporaries.
    if [[ $cur == old ]]; then "$bin" convert "$src_new" "$dir/t/$out" $opt_new >/dev/null; cur=new
    else "$bin" convert "$src_old" "$dir/t/$out" $opt_old >/dev/null; cur=old; fi
    left=$(ls -A "$dir/t" | grep -vxF "$out")
    [[ -z "$left" ]] || { k_debris=$((k_debris + 1)); echo "DEBRIS: $fmt trial $i: $left" >&2; rm -rf "$dir/t/.${out}".*; }
  done
  echo "$fmt: trials=$n kept=$k_old replaced=$k_new temps_left_by_kill=$k_tmp torn=$k_torn debris=$k_debris save_us=$(( t1 - t0 ))"
  total=$((total + n)) torn=$((torn + k_torn)) debris=$((debris + k_debris))
done
echo "crash_cli: trials=$total torn=$torn debris=$debris seed=$seed"
[[ $torn -eq 0 && $debris -eq 0 ]]
