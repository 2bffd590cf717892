# SPDX-License-Identifier: Apache-2.0
"""The benchmark's save step (bench/bench_child.py) gives every contender the same start: its
process touches and frees as much memory as it will write right before the clock, and the peak
RSS it reports is the save's own, not that recycle's.  Tiny workloads: this checks the harness,
not speed."""
import json
import os
import subprocess
import sys

from conftest import BUILD, ROOT

CHILD = ROOT / "bench" / "bench_child.py"
BENCH_C = BUILD / "bench" / "pdckpt_bench_c"


def child(*args):
    env = dict(os.environ, PYTHONPATH=str(BUILD / "python"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(CHILD), *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_recycle_leaves_no_peak_and_frees_what_it_touched():
    code = (f"import sys, resource; sys.path.insert(0, {str(ROOT / 'bench')!r}); "
            "import bench_child as bc; "
            "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20; "
            "r0 = rss(); bc.recycle_memory(256 << 20); "
            "peak = int(bc.peak_mib()); "
            "print(r0, rss(), peak)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    before, after, peak = map(int, out.stdout.split())
    assert after < before + 32  # the 256 MiB went back
    assert peak < before + 64  # and the peak restarted after it (clear_refs)


def test_numpy_saves_are_recycled_and_write_the_same_tensors(tmp_path):
    src = tmp_path / "src"
    info = child("make", "W1", src, 1 / 256)  # 256 tensors of 16 KiB: 4 MiB
    for spec in ("pdckpt:safetensors:numpy", "safetensors:safetensors:numpy",
                 "numpy:raw:numpy"):
        target = tmp_path / spec.replace(":", "_")
        target.mkdir()
        r = child("save", "W1", src, spec, target, 0)
        assert r["seconds"] > 0 and r["recycled_mib"] == info["bytes"] / 2**20
        # the timed step's own kernel/user split, and how much of the input is on 2 MiB pages
        assert r["sys_seconds"] >= 0 and r["user_seconds"] >= 0 and r["minor_faults"] >= 0
        assert r["input_huge_mib"] is None or r["input_huge_mib"] >= 0
        assert r["extra_rss_mib"] < 64  # not the recycled 4 MiB plus anything of the harness
        assert sum(f.stat().st_size for f in target.iterdir()) >= info["bytes"]
    a = (tmp_path / "pdckpt_safetensors_numpy" / "params.safetensors").read_bytes()
    b = (tmp_path / "safetensors_safetensors_numpy" / "params.safetensors").read_bytes()
    raw = (tmp_path / "numpy_raw_numpy" / "params.bin").read_bytes()
    assert a == b  # the recycle changed nothing of what is written
    assert raw == (src / "blob.bin").read_bytes()  # the floor wrote the input as it was


def test_dd_floor_is_timed_after_the_same_recycle(tmp_path):
    path = tmp_path / "dd.bin"
    r = child("dd", path, 3, 0)
    assert r["seconds"] > 0 and path.stat().st_size == 3 << 20


def test_small_page_floor_writes_its_bytes_from_4k_pages(tmp_path):
    # the drop-in table's floor: an input on 4 KiB pages (as Paddle's tensors are), recycled as
    # every save is, written whole; the 16 MiB it wrote from were not on 2 MiB pages
    path = tmp_path / "w4k.bin"
    r = child("write4k", path, 16)
    assert path.stat().st_size == 16 << 20
    assert path.read_bytes() == b"\x01" * (16 << 20)
    assert r["seconds"] > 0 and r["sys_seconds"] >= 0
    assert r["input_huge_mib"] is None or r["input_huge_mib"] < 16


def test_c_save_reports_its_own_peak(tmp_path):
    src = tmp_path / "src"
    child("make", "W1", src, 1 / 64)  # 16 MiB
    out = subprocess.run([str(BENCH_C), "save", src / "state.pdparams", tmp_path / "x.pdparams",
                          "pickle", "0"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["seconds"] > 0
    # the recycled 16 MiB left no peak behind; what the save adds is the written file's pages
    # that the lazy-open index maps to check each payload's offset (page cache, counted in RSS)
    assert r["peak_rss_kib"] < (8 << 10) + (tmp_path / "x.pdparams").stat().st_size // 1024
    assert (tmp_path / "x.pdparams").stat().st_size > 16 << 20
