#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes fuzz/corpus/fuzz_pickle_index seeds: pickles saved by pdckpt itself with the lazy-open
index it writes beside them (`<file>.pdkidx`: a state dict of tensors, or tensors averaging
>= 64 KiB), packed as
fuzz_pickle_index.c reads them: a mode byte, the pickle's length (3 bytes, little-endian), the
pickle, then the index -- whole (mode 0, one seed), its body only (mode 1: decoded whole; mode 3:
opened entry by entry), or nothing (mode 2: encode and decode again).  A few small pickles of fuzz/corpus/fuzz_pickle are added for mode 2.  Run with
the project venv's python and PYTHONPATH=build/python."""
import os
import sys
import tempfile

import numpy as np
import pdckpt

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_pickle_index")
HEADER = 80  # magic, stamp, body length and hash (PDK_PICKLE_INDEX_HEADER)


def states():
    big = np.arange(32768, dtype=np.float32).reshape(256, 128)  # 128 KiB: averages >= 64 KiB
    yield "state", {"fc.w_0": big, "fc.b_0": np.ones(3, np.float32), "step": 7}
    yield "nested", {"model": {"w": big, "s": np.array(2.5, np.float64)},
                     "opt": {"lr": 0.5, "tag": "adam", "betas": (0.9, 0.999)},
                     "flags": [True, False, None], "raw": b"\x00\x01"}
    # a state dict of small tensors: its index is written from the save (no parse)
    yield "small", {f"layer{i}.w_0": np.full(4 + i, i, np.float32) for i in range(6)}
    yield "dtypes", {"i64": np.arange(8192, dtype=np.int64), "u8": np.zeros(70000, np.uint8),
                     "bool": np.zeros(70000, np.bool_)}


def pack(mode, pickle, rest):
    return bytes([mode]) + len(pickle).to_bytes(3, "little") + pickle + rest


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, state in states():
            path = os.path.join(tmp, name + ".pdparams")
            pdckpt.save(state, path)
            with open(path, "rb") as f:
                pkl = f.read()
            with open(path + ".pdkidx", "rb") as f:  # written: tensors are large enough
                idx = f.read()
            whole = ((0, idx),) if name == "state" else ()  # the header checks: one is enough
            for mode, rest in whole + ((1, idx[HEADER:]), (2, b""), (3, idx[HEADER:])):
                with open(os.path.join(OUT, "%s-mode%d" % (name, mode)), "wb") as f:
                    f.write(pack(mode, pkl, rest))
    small = os.path.join(HERE, "corpus", "fuzz_pickle")
    for name in sorted(os.listdir(small))[:12]:
        with open(os.path.join(small, name), "rb") as f:
            pkl = f.read()
        if len(pkl) < 1 << 16:
            with open(os.path.join(OUT, "small-" + name + "-mode2"), "wb") as f:
                f.write(pack(2, pkl, b""))


if __name__ == "__main__":
    sys.exit(main())
