#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mechanical house-style checks (README "Developing"): exported symbols, include layering,
# clang-format, function and file length.  A function may exceed the limit only with a comment containing
# "pdckpt:long-function" on one of the three lines above it, saying why.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lib="${1:-$root/build/libpdckpt.so}"
fail=0

bad_symbols=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^pdckpt_' || true)
if [[ -n "$bad_symbols" ]]; then
  echo "style: exported symbols without the pdckpt_ prefix:"; echo "$bad_symbols"; fail=1
fi

# Layers (docs/DESIGN.md "Layers"): core < io < formats (with formats/distcp) < api, with async
# (the asynchronous saver) beside api and mpi on core/io/formats; cli/python only public.  No file
# includes upward, and the files of src/formats never include formats/distcp (the registry
# reaches it through pdk_format.h), so no circle runs between folders.
check_includes() {  # dir, forbidden-regex, description
  local hits
  hits=$(grep -rnE "#include \"($2)" "$root/$1" 2>/dev/null || true)
  if [[ -n "$hits" ]]; then echo "style: $3:"; echo "$hits"; fail=1; fi
}
check_includes src/core '\.\./(io|formats|api|async|mpi)/' "src/core includes an upper layer"
check_includes src/io '\.\./(formats|api|async|mpi)/' "src/io includes an upper layer"
check_includes src/formats '(\.\./)+(api|async|mpi)/' "src/formats includes src/api, src/async or src/mpi"
check_includes src/api '\.\./(async|mpi)/' "src/api includes src/async or src/mpi (libpdckpt_mpi)"
check_includes src/async '\.\./(api|mpi)/' "src/async includes src/api or src/mpi (it sits on formats)"
check_includes src/mpi '\.\./(api|async)/' "src/mpi (libpdckpt_mpi) includes src/api or src/async (it sits on the core, io and formats)"
check_includes cli '\.\./src/|pdk_' "cli includes internal headers"
up=$(grep -nE '#include "(\./)?distcp/' "$root"/src/formats/*.[ch] 2>/dev/null || true)
if [[ -n "$up" ]]; then echo "style: src/formats includes formats/distcp (a circle):"; echo "$up"; fail=1; fi

# Calls, not only includes, run one way (cli -> api -> formats -> io -> core): every layer sees
# the public header, so an include check cannot catch a format calling pdckpt_load_file.  No code
# below src/api, nor src/async or src/mpi beside it, calls an entry point that src/api defines;
# it calls the formats layer (src/formats/format_io.c: pdk_load_path, pdk_save_path, ...).
api_entry=$(cd "$root" && ctags -x --kinds-C=f --_xformat='%N' src/api/*.c 2>/dev/null |
  grep '^pdckpt_' | sort -u | paste -sd'|' - || true)
if [[ -z "$api_entry" ]]; then echo "style: no entry points found in src/api (ctags?)"; fail=1; fi
upcalls=$(cd "$root" && git grep -nE "(^|[^A-Za-z0-9_])($api_entry)\(" -- src/core src/io \
  src/formats src/async src/mpi 2>/dev/null | grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//)' || true)
if [[ -n "$upcalls" ]]; then
  echo "style: a call from below src/api (or from src/async, src/mpi) to a public entry point src/api defines (call the formats layer):"
  echo "$upcalls"; fail=1
fi

# libpdckpt_mpi exports only its own calls (its copy of the core stays hidden).
mpi_lib="$(dirname "$lib")/libpdckpt_mpi.so"
if [[ -f "$mpi_lib" ]]; then
  bad_mpi=$(nm -D --defined-only "$mpi_lib" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^pdckpt_mpi_' || true)
  if [[ -n "$bad_mpi" ]]; then echo "style: libpdckpt_mpi exports more than pdckpt_mpi_*:"; echo "$bad_mpi"; fail=1; fi
fi

# One flattener: the (name, tensor) walk is src/core/flatten.c's (public pdckpt_value_flatten).
flatteners=$(cd "$root" && git grep -nE '^static [a-z_ ]+\b(flatten|walk)\(' -- src cli python \
  ':!src/core/compare_walk.c' 2>/dev/null || true) # compare_walk.c: pdckpt_value_walk itself
if [[ -n "$flatteners" ]]; then
  echo "style: a tree flattener outside src/core/flatten.c (use pdckpt_value_flatten):"; echo "$flatteners"; fail=1
fi

# One directory swap and one remove-tree (src/io/fs_util.c), one source of random values
# (src/core/random.c: temp names and the hash seed): the copies the MPI library kept are gone and
# must not come back.
fs_copies=$(cd "$root" && { git grep -nE 'RENAME_EXCHANGE|nftw\(' -- src cli python ':!src/io/fs_util.c'
  git grep -nE 'getrandom\(' -- src cli python ':!src/core/random.c'; } 2>/dev/null |
  grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//)' || true)
if [[ -n "$fs_copies" ]]; then
  echo "style: filesystem helpers outside src/io/fs_util.c, or getrandom outside src/core/random.c:"; echo "$fs_copies"; fail=1
fi

# Ints beyond 64 bits have one form in a tree, known only to src/core/bigint.c: nobody else
# builds builtins.int objects, renders their decimal digits or decodes their bytes (the pickle
# reader, writer, CLI and Python binding all call pdckpt_value_*_bigint / pdckpt_bigint_decimal).
# (pickle_names.c only lists Python 2's name for the class, as it does for every renamed global.)
bigint=$(cd "$root" && git grep -nE '"builtins", "int"|rem << 8|from_bytes\(.*signed=True|[^a-z_]_long_bytes' \
  -- src cli python ':!src/core/bigint.c' ':!src/formats/pickle/pickle_names.c' 2>/dev/null | grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//|#)' || true)
if [[ -n "$bigint" ]]; then
  echo "style: big ints encoded or decoded outside src/core/bigint.c:"; echo "$bigint"; fail=1
fi

# One place for each piece of knowledge: Paddle's name-table key is spelled only in the public
# header (C callers use PDCKPT_NAME_TABLE_KEY, Python _native.NAME_TABLE_KEY), also not inside a
# longer literal such as a JSON key path or a message.
spelled=$(cd "$root" && git grep -n 'StructuredToParameterName@@' -- src cli python include \
  ':!include/pdckpt.h' 2>/dev/null | grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//|#)' || true)
if [[ -n "$spelled" ]]; then
  echo "style: the name-table key spelled outside include/pdckpt.h:"; echo "$spelled"; fail=1
fi

# The registry is the only place that knows format names and file-name suffixes (docs/DESIGN.md
# "Formats"; issue 17 item 2): outside src/formats no code spells a suffix as a literal of its
# own -- it asks pdckpt_resolve, pdckpt_format_from_path or pdckpt_info_path.  Comments, help
# text and messages name the files for the reader and are not caught: only a literal that IS a
# suffix (".pdparams") or builds a path from one ("%s.pdopt").  A line that must spell one says
# why with "pdckpt:names-ok".  Python names files from _native.SUFFIXES (the registry's lists,
# through pdckpt_format_suffixes).
suffix_re='["'"'"'](%s)?(\.pdmodel|\.pdiparams|\.pdiparams\.info|\.pdparams|\.pdopt|\.safetensors|\.json|'
suffix_re+='\.index\.json|\.pkl|\.tnum|\.distcp|\.metadata|\.info|__model__|__params__|__variables__|'
suffix_re+='__variables\.info__|__model__\.json)["'"'"']'
suffixes=$(cd "$root" && git grep -nE "$suffix_re" -- src cli python ':!src/formats' 2>/dev/null \
  | grep -vE '^[^:]+:[0-9]+:\s*(/\*|\*|//|#)' | grep -v 'pdckpt:names-ok' || true)
if [[ -n "$suffixes" ]]; then
  echo "style: a format suffix spelled outside src/formats (ask pdckpt_resolve / the registry):"
  echo "$suffixes"; fail=1
fi

# Inside src/formats too, the names Paddle gives a checkpoint's parts (program, parameters, info,
# pickles) are spelled once, as PDK_NAME_* in src/formats/pdk_format.h: the descriptors list them
# as suffixes and the locators build paths from them (issue 17).  Comments are not caught.
inner_names=$(cd "$root" && git grep -nE '"(\.pdmodel|__model__|__model__\.json|\.json|\.pdiparams|\.pdiparams\.info|__params__|__variables__|__variables\.info__|\.info|\.pdparams|\.pdopt)"' \
  -- src/formats ':!src/formats/pdk_format.h' 2>/dev/null | sed -E 's#/\*.*##; s#//.*##' |
  grep -E '"(\.pdmodel|__model__|__model__\.json|\.json|\.pdiparams|\.pdiparams\.info|__params__|__variables__|__variables\.info__|\.info|\.pdparams|\.pdopt)"' || true)
if [[ -n "$inner_names" ]]; then
  echo "style: a Paddle file name spelled in src/formats outside pdk_format.h (use its PDK_NAME_*):"
  echo "$inner_names"; fail=1
fi

# One JSON string writer (pdckpt_json_write_string, src/core/json_text.c): no other code formats
# a \uXXXX escape (a printf-style format that starts with one is the mark of a hand escaper).
# src/core/display_text.c is the one display escaper (not JSON: names shown on a terminal).
escapers=$(cd "$root" && git grep -nE '"\\\\u%' -- src cli python ':!src/core/json_text.c' \
  ':!src/core/display_text.c' 2>/dev/null || true)
if [[ -n "$escapers" ]]; then
  echo "style: a JSON string escaper outside src/core/json_text.c (call pdckpt_json_write_string):"
  echo "$escapers"; fail=1
fi

# Licence: every tracked source file names its licence (SPDX) in its first lines.
unlicensed=$(cd "$root" && git ls-files '*.c' '*.h' '*.cpp' '*.py' '*.pyi' '*.sh' 'CMakeLists.txt' \
  2>/dev/null | while read -r f; do head -3 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0' || echo "$f"; done)
if [[ -n "$unlicensed" ]]; then
  echo "style: no SPDX-License-Identifier line (Apache-2.0) near the top of:"; echo "$unlicensed"; fail=1
fi

# Formatting: every tracked C file as .clang-format says (clang-format 14, Debian's).
unformatted=$(cd "$root" && git ls-files '*.c' '*.h' 2>/dev/null | xargs -r clang-format --dry-run 2>&1 |
  grep -oE '^[^:]+:[0-9]+:[0-9]+: warning' | cut -d: -f1 | sort -u || true)
if [[ -n "$unformatted" ]]; then
  echo "style: not clang-formatted (run: git ls-files '*.c' '*.h' | xargs clang-format -i):"
  echo "$unformatted"; fail=1
fi

while IFS= read -r f; do
  lines=$(wc -l < "$f")
  if (( lines > 1000 )); then echo "style: $f has $lines lines (limit 1000)"; fail=1; fi
done < <(find "$root/src" "$root/cli" "$root/python" -name '*.c' 2>/dev/null)

while IFS=$'\t' read -r name file line end; do
  len=$(( end - line + 1 ))
  (( len <= 60 )) && continue
  from=$(( line > 3 ? line - 3 : 1 ))
  if sed -n "${from},${line}p" "$file" | grep -q 'pdckpt:long-function'; then continue; fi
  echo "style: $file:$line: function $name is $len lines (limit 60)"; fail=1
done < <(cd "$root" && find src cli python -name '*.c' 2>/dev/null | xargs -r ctags -x --kinds-C=f \
          --_xformat='%N	%F	%n	%e' 2>/dev/null)

exit $fail
