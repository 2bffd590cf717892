# SPDX-License-Identifier: Apache-2.0
"""A process that loads checkpoints in a loop reuses the memory of the loads it freed.

A load of 32 MiB or more reads into a block of its own (src/core/block_cache.c); when its last
array or paddle.Tensor is gone the block is kept, so the next load of that size faults in no
fresh pages.  Counted with the kernel's minor-fault counter in a fresh process (transparent huge
pages off, so a fault is one 4 KiB page on any machine): the second load
of a 48 MiB file faults in almost nothing, unless PDCKPT_BLOCK_CACHE=0 or trim_memory() ran;
values are exact either way.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pdckpt

MIB = 1 << 20

CHILD = r"""
import ctypes, json, resource, sys
# Faults counted in 4 KiB pages whatever the machine's THP policy: a load of 4 MiB or more is
# advised MADV_HUGEPAGE on a VM without free page reporting (src/io/input.c), and 48 MiB of
# 2 MiB pages fault in 24 times, not 12,288.
assert ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) == 0  # PR_SET_THP_DISABLE
import numpy as np
import pdckpt
path, mode, trim = sys.argv[1], sys.argv[2], sys.argv[3] == "trim"
want = np.load(path + ".npy")

def load():
    # minor faults of the load call alone; then the values checked
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    got = pdckpt.load(path) if mode == "paddle" else pdckpt.load(path, return_numpy=True)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    if mode == "paddle":
        assert isinstance(got["w"], paddle.Tensor)
        return faults, bool((got["w"].numpy() == want).all())
    return faults, bool((got["w"] == want).all())

if mode == "paddle":
    import paddle
faults, oks = [], []
for i in range(3):
    f, ok = load()
    faults.append(f)
    oks.append(ok)
    if trim:
        pdckpt.trim_memory()
print(json.dumps({"faults": faults, "ok": oks}))
"""


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("blocks")
    w = np.random.default_rng(7).standard_normal(12 * MIB, dtype=np.float32)  # 48 MiB
    path = str(d / "big.pdparams")
    pdckpt.save({"w": w}, path)
    np.save(path + ".npy", w)
    return path


def run_child(path, mode, trim=False, cache=None):
    env = dict(os.environ)
    env.pop("PDCKPT_BLOCK_CACHE", None)
    if cache is not None:
        env["PDCKPT_BLOCK_CACHE"] = str(cache)
    out = subprocess.run([sys.executable, "-c", CHILD, path, mode, "trim" if trim else "keep"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


PAGES = 48 * MIB // 4096  # 12,288 pages of 4 KiB


@pytest.mark.parametrize("mode", ["numpy", "paddle"])
def test_second_load_reuses_the_freed_block(big_file, mode):
    r = run_child(big_file, mode)
    assert r["ok"] == [True, True, True]
    assert r["faults"][0] > PAGES // 2  # the first load faults its memory in
    assert max(r["faults"][1:]) < PAGES // 10, r["faults"]


def test_cache_off_faults_every_load(big_file):
    r = run_child(big_file, "numpy", cache=0)
    assert r["ok"] == [True, True, True]
    assert min(r["faults"]) > PAGES // 2, r["faults"]


def test_cap_below_the_block_keeps_nothing(big_file):
    r = run_child(big_file, "numpy", cache=32 * MIB)
    assert min(r["faults"]) > PAGES // 2, r["faults"]


def test_trim_memory_hands_blocks_back(big_file):
    r = run_child(big_file, "numpy", trim=True)
    assert r["ok"] == [True, True, True]
    assert min(r["faults"]) > PAGES // 2, r["faults"]


def test_block_alive_while_an_array_uses_it(big_file):
    """A kept array keeps its block: a second load gets other memory, both stay exact."""
    want = np.load(big_file + ".npy")
    first = pdckpt.load(big_file, return_numpy=True)["w"]
    second = pdckpt.load(big_file, return_numpy=True)["w"]
    assert not np.shares_memory(first, second)
    second[:] = 0  # writable arrays: a write to one must not show in the other
    assert (first == want).all()
    del second
    third = pdckpt.load(big_file, return_numpy=True)["w"]
    assert (third == want).all() and (first == want).all()
