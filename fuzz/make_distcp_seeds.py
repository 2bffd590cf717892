#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes fuzz/corpus/fuzz_distcp seeds: sharded checkpoints that pdckpt's own ranks write
(`mpirun -n 1 pdckpt dist shard`, so every piece lands in 0_0.distcp), packed as fuzz_distcp.c
reads them (u32 length of 0.metadata, the metadata, the data file).  Usage:
    make_distcp_seeds.py PATH/TO/pdckpt"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from make_seeds import stream

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
# name -> (VarType code, dims, element size): float32 [3, 2], int64 [4], float64 0-d
TENSORS = {"fc.w_0": (5, (3, 2), 4), "step": (3, (4,), 8), "scale": (6, (), 8)}


def seed(cli, layout, names):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.mkdir(src)
        for n in names:
            code, dims, size = TENSORS[n]
            count = 1
            for d in dims:
                count *= d
            with open(os.path.join(src, n), "wb") as f:
                f.write(stream(code, dims, bytes(range(count * size))))
        ck = os.path.join(tmp, "ck")
        subprocess.run(["mpirun", "-n", "1", cli, "dist", "shard", src, ck, "--ranks-layout",
                        layout], check=True, env=ENV, capture_output=True)
        meta = open(os.path.join(ck, "0.metadata"), "rb").read()
        data = open(os.path.join(ck, "0_0.distcp"), "rb").read()
        return struct.pack("<I", len(meta)) + meta + data


def main():
    cli = sys.argv[1]
    out = os.path.join(HERE, "corpus", "fuzz_distcp")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name, layout, names in (("one", "row", ["fc.w_0"]), ("three", "row", list(TENSORS))):
        with open(os.path.join(out, name), "wb") as f:
            f.write(seed(cli, layout, names))


if __name__ == "__main__":
    main()
