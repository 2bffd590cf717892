#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_pickle_placed (fuzz/corpus/fuzz_pickle_placed): pickles whose
arrays are large enough (16 KiB and more) for the placed read to move them, at odd offsets so
filler is needed, under protocols 2-5, in the shapes Paddle writes (a state dict with a name
table, an optimizer-like nested dict, a protocol-5 out-of-band-free buffer).  Run with the
project venv's python (numpy needed); it rewrites the corpus."""
import os
import pickle

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_pickle_placed")


def arr(n, dtype, seed):
    return (np.arange(n, dtype=np.int64) * seed % 251).astype(dtype)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "state_dict_p2": ({"a.w": arr(4099, "float32", 3), "b": arr(5, "int64", 5),
                           "StructuredToParameterName@@": {"a.w": "linear_0.w_0", "b": "b_0"}}, 2),
        "two_arrays_p4": ({"x": arr(4097, "float32", 7), "odd": arr(3, "uint8", 1),
                           "y": arr(2049, "float64", 11)}, 4),
        "nested_p3": ({"model": {"w": arr(8193, "float16", 13)}, "epoch": 3,
                       "opt": {"m": arr(4100, "float32", 17), "lr": 0.5}}, 3),
        "list_p5": ([arr(4111, "int32", 19), "tag", arr(4096, "float32", 23)], 5),
    }
    for name, (obj, proto) in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(pickle.dumps(obj, protocol=proto))


if __name__ == "__main__":
    main()
