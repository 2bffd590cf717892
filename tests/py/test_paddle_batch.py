# SPDX-License-Identifier: Apache-2.0
"""Issue 18, W2: pdckpt.load makes a state dict's many small tensors of one shape and dtype a
chunk at a time (py_paddle_batch.c): each a DenseTensor of its own over its payload in the read
buffer, made through Paddle's private methods once _convert._views_rehome has tried them ("views";
asked at the first batch),
or else one tensor of the chunk split by paddle.unstack (copies: "unstack").  Both are tested.
Judged by real Paddle: the result equals paddle.load's (values, dtype, shape, name, flags) on
W2-like and mixed files; the tensors are independent (in-place ops, set_value, saves, autograd
after an in-place op on a neighbour); memory goes when they go; anything unusual takes the
per-tensor path."""

import os

import numpy as np
import paddle
import pytest

import pdckpt

NAME_TABLE = "StructuredToParameterName@@"
MIN = 16  # BATCH_MIN_COUNT in py_paddle_batch.c


def w2_like(n, shape=(256,), dtype=np.float32, seed=1):
    rng = np.random.default_rng(seed)
    return {f"blocks.{i}.w": rng.standard_normal(shape).astype(dtype) for i in range(n)}


def paddle_state(arrays):
    """A Layer-like state dict: named paddle.Tensors (paddle.save writes its name table)."""
    out = {}
    for k, a in arrays.items():
        t = paddle.to_tensor(a)
        t.name = "p_" + k.replace(".", "_")
        out[k] = t
    return out


def assert_same(got, want):
    """pdckpt.load's result is what paddle.load gives, tensor by tensor, in the same order."""
    assert list(got) == list(want)
    for k, w in want.items():
        g = got[k]
        assert type(g) is type(w), k
        if not isinstance(w, paddle.Tensor):
            if isinstance(w, dict):
                assert_same(g, w)
            elif isinstance(w, np.ndarray):
                np.testing.assert_array_equal(g, w)
            else:
                assert g == w, k
            continue
        assert (g.dtype, list(g.shape), g.name) == (w.dtype, list(w.shape), w.name), k
        assert (g.stop_gradient, g.persistable, g.place.is_cpu_place()) == (
            w.stop_gradient, w.persistable, w.place.is_cpu_place()), k
        assert g.is_contiguous() and g.data_ptr() % 64 == 0, k
        np.testing.assert_array_equal(g.numpy(), w.numpy())


def tensors_in(obj):
    if isinstance(obj, paddle.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors_in(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors_in(v)


def view_chunks(*results):
    """The sizes of the chunks made as views: tensors sharing one allocation (data_ptr less
    _offset is the allocation's start); a tensor made one by one or copied has its own."""
    bases = {}
    for t in (t for r in results for t in tensors_in(r)):
        base = t.data_ptr() - t._offset()
        bases[base] = bases.get(base, 0) + 1
    return sorted(n for n in bases.values() if n > 1)


class Chunks:
    """How a test's loads were batched: the sorted chunk sizes, counted by a wrapper of
    paddle.unstack ("unstack") or from the tensors' shared allocations ("views")."""

    def __init__(self, mode):
        self.mode, self.calls = mode, []

    def __call__(self, *results):
        if self.mode == "views":
            assert self.calls == []  # no copy
            return view_chunks(*results)
        assert view_chunks(*results) == []  # every copy its own
        return sorted(self.calls)


@pytest.fixture(params=["views", "unstack"])
def splits(request, monkeypatch):
    """Chunks(mode); with "unstack", _views_rehome answers no (another Paddle).  The spec that
    hands these to the C pass is made afresh around the test."""
    from pdckpt import _convert
    chunks = Chunks(request.param)
    real = paddle.unstack

    def counting(x, axis=0, *args, **kw):
        chunks.calls.append(x.shape[0])
        return real(x, axis, *args, **kw)

    monkeypatch.setattr(paddle, "unstack", counting)
    if request.param == "unstack":
        monkeypatch.setattr(_convert, "_views_rehome", lambda paddle: False)
    _convert._SPECS.clear()
    yield chunks
    _convert._SPECS.clear()


@pytest.mark.parametrize("writer", ["paddle", "pdckpt"])
def test_w2_like_file_equals_paddle_load_in_one_call(tmp_path, writer, splits):
    arrays = w2_like(300)
    path = tmp_path / "w2.pdparams"
    if writer == "paddle":
        paddle.save(paddle_state(arrays), str(path))
    else:
        pdckpt.save(arrays, path)
    got, want = pdckpt.load(path), paddle.load(str(path))
    assert_same(got, want)
    assert splits(got) == [300]


@pytest.mark.parametrize("n,chunks", [(4096 + 10, [4106]), (2 * 4096 + 20, [4096, 4096, 20])])
def test_large_groups_split_in_chunks(tmp_path, splits, n, chunks):
    """A group is split 4 MiB at a time (CHUNK_BYTES: 4,096 x 1 KiB); a tail shorter than a
    batch joins the chunk before it.  Paddle-written (payloads between opcodes: each chunk
    gathered) and the result still paddle.load's, in order, every tensor its own."""
    path = tmp_path / "w2.pdparams"
    paddle.save(paddle_state(w2_like(n)), str(path))
    got = pdckpt.load(path)
    assert_same(got, paddle.load(str(path)))
    assert splits(got) == sorted(chunks)
    ptrs = {t.data_ptr() for t in got.values()}
    assert len(ptrs) == n  # no two share memory


def test_mixed_tree_equals_paddle_load(tmp_path, splits):
    rng = np.random.default_rng(3)
    arrays = {}
    arrays.update(w2_like(70, (4, 16), np.float32, 4))             # a group: batched
    arrays.update({f"b{i}": rng.integers(-9, 9, 128) for i in range(80)})  # int64 [128]: batched
    arrays.update({f"few{i}": rng.standard_normal(16).astype(np.float32)
                   for i in range(10)})                             # too few of this shape
    arrays.update({f"odd{i}": rng.standard_normal(7).astype(np.float32)
                   for i in range(70)})                             # 28 bytes: a group too
    arrays["big"] = rng.standard_normal(100_000).astype(np.float32)  # large: on its own
    arrays.update({f"late{i}": rng.standard_normal((4, 16)).astype(np.float32)
                   for i in range(5)})                              # joins the first group
    path = tmp_path / "mixed.pdparams"
    paddle.save(paddle_state(arrays), str(path))
    got, want = pdckpt.load(path), paddle.load(str(path))
    assert_same(got, want)
    assert splits(got) == [70, 75, 80]
    # A nested dict with other values: paddle.load's rules, unchanged.
    nested = {"model": paddle_state(w2_like(80)), "epoch": 3, "lr": 0.5, "tag": "x",
              "extra": [paddle.to_tensor(np.ones(256, np.float32))]}
    nested.update(paddle_state(w2_like(70, seed=5)))
    path2 = tmp_path / "nested.pdparams"
    paddle.save(nested, str(path2))
    got2, want2 = pdckpt.load(path2), paddle.load(str(path2))
    assert_same({k: v for k, v in got2.items() if k != "extra"},
                {k: v for k, v in want2.items() if k != "extra"})
    assert_same(dict(enumerate(got2["extra"])), dict(enumerate(want2["extra"])))
    assert splits(got, got2) == [70, 70, 75, 80]  # the root's tensors only: "model" one by one


def test_batched_tensors_are_independent(tmp_path, splits):
    arrays = w2_like(100)
    path = tmp_path / "w2.pdparams"
    pdckpt.save(arrays, path)
    got = pdckpt.load(path)
    keys = list(arrays)
    assert splits(got) == [100]
    # Each has its own in-place version (paddle.unbind's views would share one): autograd over
    # one tensor survives an in-place op on its neighbour.
    a, b = got[keys[20]], got[keys[21]]
    a.stop_gradient = False
    y = (a * a).sum()
    b.add_(paddle.ones_like(b))
    y.backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * arrays[keys[20]], rtol=1e-6)
    assert a._inplace_version() == 0 and b._inplace_version() == 1
    got[keys[5]].add_(paddle.ones_like(got[keys[5]]))
    got[keys[7]].set_value(np.full(256, 7, np.float32))
    got[keys[9]].scale_(0.0)
    for i, k in enumerate(keys):
        want = {5: arrays[k] + 1, 7: np.full(256, 7, np.float32), 9: arrays[k] * 0,
                21: arrays[k] + 1}.get(i, arrays[k])
        np.testing.assert_allclose(got[k].numpy(), want, rtol=1e-6)
    # Saved again by either library, read back by Paddle: the values as they are now.
    expect = {k: got[k].numpy().copy() for k in keys}
    paddle.save(got, str(tmp_path / "again_paddle.pdparams"))
    pdckpt.save(got, tmp_path / "again_pdckpt.pdparams")
    for name in ("again_paddle.pdparams", "again_pdckpt.pdparams"):
        back = paddle.load(str(tmp_path / name))
        for k in keys:
            np.testing.assert_array_equal(back[k].numpy(), expect[k])
            assert back[k].name == got[k].name
    # Exported as they are (a view's offset into the read buffer is honoured) and copied.
    for k in keys[22:52]:  # (keys[20] now requires a gradient: no DLPack export)
        t = got[k]
        back = paddle.utils.dlpack.from_dlpack(paddle.utils.dlpack.to_dlpack(t))
        for other in (np.from_dlpack(t), back.numpy(), t.clone().numpy(), t.reshape([16, 16])):
            np.testing.assert_array_equal(np.asarray(other).reshape(-1), expect[k])
    # Usable by a Layer and in autograd.
    lin = paddle.nn.Linear(256, 1)
    lin.weight.set_value(got[keys[0]].reshape([256, 1]))
    x = got[keys[1]]
    x.stop_gradient = False
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(256, 2, np.float32))


@pytest.mark.parametrize("writer", ["paddle", "pdckpt"])
def test_scalars_and_small_shapes(tmp_path, writer, splits):
    """An optimizer's 0-d and [1] accumulators and small 2-D tensors (rows of 4 and 120 bytes):
    batched, equal to paddle.load's, each written on its own."""
    state = {}
    for i in range(40):
        state[f"s{i}"] = paddle.to_tensor(np.float32(i))
        state[f"o{i}"] = paddle.to_tensor(np.array([i], np.float32))
        state[f"c{i}"] = paddle.to_tensor(np.full((3, 5), i, np.float64))
    for k, t in state.items():
        t.name = "n_" + k
    path = tmp_path / "small.pdparams"
    if writer == "paddle":
        paddle.save(state, str(path))
    else:
        pdckpt.save(state, path)
    got = pdckpt.load(path)
    assert_same(got, paddle.load(str(path)))
    assert splits(got) == [40, 40, 40]
    got["o3"].add_(paddle.ones([1]))
    got["s3"].scale_(2.0)
    assert [float(got[k].numpy().sum()) for k in ("o2", "o3", "o4", "s2", "s3", "s4")] == [
        2, 4, 4, 2, 6, 4]


_MEMORY_SCRIPT = """
import gc, os, sys, threading, time
import numpy as np
import paddle
import pdckpt

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

_malloc_trim = __import__("ctypes").CDLL(None).malloc_trim

def settled_rss_mib():
    # RSS of what is alive: freed heap pages handed back first, since when glibc trims on its own
    # depends on the sizes of earlier frees (a freed mmapped chunk raises the trim threshold)
    _malloc_trim(0)
    return rss_mib()

def anon_mib():  # resident less file-backed (libpaddle's pages come and go with the page cache)
    with open("/proc/self/statm") as f:
        f = f.read().split()
    return (int(f[1]) - int(f[2])) * os.sysconf("SC_PAGE_SIZE") / 2**20

def load_sampled(path):
    # pdckpt.load(path) and the most anonymous memory seen while it ran (sampled every 0.5 ms)
    most, done = [anon_mib()], threading.Event()
    def sample():
        while not done.is_set():
            most[0] = max(most[0], anon_mib())
            time.sleep(0.0005)
    t = threading.Thread(target=sample)
    t.start()
    try:
        return pdckpt.load(path), most
    finally:
        done.set()
        t.join()

splits, unstack, mode = [], paddle.unstack, sys.argv[2]
def counting(x, axis=0, num=None):
    splits.append(int(x.shape[0]))
    return unstack(x, axis=axis, num=num)
paddle.unstack = counting
if mode == "unstack":
    pdckpt._convert._views_rehome = lambda paddle: False
rng = np.random.default_rng(1)
arrays = {f"blocks.{i}.w": rng.standard_normal((256,)).astype(np.float32) for i in range(40000)}
path = sys.argv[1]
pdckpt.save(arrays, path)
# Paddle's own first-use set-up is not the load's memory
warm = {f"w.{i}": np.ones(256, np.float32) for i in range(64)}
pdckpt.save(warm, path + ".warm")
del warm
pdckpt.load(path + ".warm")["w.1"].add_(paddle.ones([256]))
splits.clear()
want = arrays["blocks.12345.w"]
del arrays
gc.collect()
grown, transient, result, kept_cost = [], None, None, None
for _ in range(3):
    before = settled_rss_mib()
    got, most = load_sampled(path)
    took = rss_mib() - before
    if transient is None:  # what the load held beyond its result: the file and its tree
        transient, result = most[0] - anon_mib(), took
        bases = {}
        for t in got.values():  # views of one chunk share an allocation
            bases[t.data_ptr() - t._offset()] = bases.get(t.data_ptr() - t._offset(), 0) + 1
        if mode == "views":
            splits = sorted(bases.values())
        else:
            assert len(bases) == 40000
    assert took > 30 or grown, took  # the first load takes memory in a fresh process
    kept = got["blocks.12345.w"]
    del got
    gc.collect()
    if kept_cost is None:
        kept_cost = settled_rss_mib() - before
    np.testing.assert_array_equal(kept.numpy(), want)  # outlives the others and the tree
    kept.add_(paddle.ones_like(kept))
    np.testing.assert_allclose(kept.numpy(), want + 1, rtol=1e-6)
    del kept
    gc.collect()
    grown.append(settled_rss_mib() - before)
# split a few MiB at a time (CHUNK_BYTES in py_paddle_batch.c), never the whole group at once
rounds = 1 if mode == "views" else 3
assert sum(splits) == 40000 * rounds and max(splits) == 4096, splits
file_mib = os.path.getsize(path) / 2**20
assert transient < 1.3 * file_mib + 8, (transient, file_mib)  # whole-group copy: 1.8x
# freed, not leaked: a round that kept its tensors would grow by more than the file (each 1 KiB
# tensor takes 4 KiB of Paddle's); the allocator's own slack has measured up to 11 MiB
assert max(grown[1:]) < 0.5 * file_mib, (grown, file_mib)
if mode == "views":
    # the result is the read buffer (the file) and ~1 KiB of Paddle's objects per tensor
    # (measured 83.5-87.3 MiB with settled RSS), not 4 KiB of Paddle's memory per tensor besides
    # (unstack: ~190 MiB here); one tensor kept keeps the read buffer -- the whole file (measured
    # 42.9-43.0 MiB for this 41.8 MiB file) -- and no more
    assert result < file_mib + 40000 * 1536 / 2**20, (result, file_mib)
    assert kept_cost < 1.2 * file_mib + 8, (kept_cost, file_mib)
print("ok", mode, grown, transient, result, kept_cost, file_mib)
"""


@pytest.mark.parametrize("mode", ["views", "unstack"])
def test_memory_goes_with_the_tensors(tmp_path, mode):
    """40 MB of 1 KiB tensors loaded three times in a fresh process (RSS there starts from the
    load itself, not from what earlier tests freed): one tensor kept outlives the tree and the
    others, and later rounds grow by nothing -- the batch's memory goes with its tensors; the
    group is split in chunks, so the load's peak beyond its result is the file's buffer and tree,
    no gathered copy of the group besides."""
    import subprocess
    import sys

    from conftest import PY_STAGE
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path / "w2.pdparams"),
                           mode],
                          capture_output=True, text=True, timeout=600,
                          # freed blocks kept for the next load would read as growth here
                          # (test_block_reuse.py covers that cache)
                          env={**os.environ, "PYTHONPATH": str(PY_STAGE),
                               "PDCKPT_BLOCK_CACHE": "0"})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
    print(proc.stdout)


def test_unusual_cases_take_the_per_tensor_path(tmp_path, splits):
    arrays = w2_like(MIN - 1)
    path = tmp_path / "few.pdparams"
    pdckpt.save(arrays, path)
    few = pdckpt.load(path)
    assert_same(few, paddle.load(str(path)))
    assert splits(few) == []  # too few
    many = tmp_path / "many.pdparams"
    pdckpt.save(w2_like(200), many)
    # return_numpy: arrays, as paddle.load gives them.
    arrs = pdckpt.load(many, return_numpy=True)
    want = paddle.load(str(many), return_numpy=True)
    assert all(isinstance(a, np.ndarray) and np.array_equal(a, want[k]) for k, a in arrs.items())
    # Mapped loads hand Paddle copies as before (never the mapping), one by one.
    mapped = pdckpt.load(many, mmap=True)
    assert_same(mapped, paddle.load(str(many)))
    # Large tensors: one by one.
    large = tmp_path / "large.pdparams"
    pdckpt.save(w2_like(70, (16385,)), large)
    got_large = pdckpt.load(large)
    assert_same(got_large, paddle.load(str(large)))
    assert splits(mapped, got_large) == []
    # Dtypes Paddle's CPU unstack has no kernel for (float16, bfloat16, int8, bool): one by one.
    odd = tmp_path / "dtypes.pdparams"
    state = {}
    for dt in ("float16", "bfloat16", "int8", "bool"):
        state.update({f"{dt}{i}": paddle.to_tensor(np.full(256, i % 2, np.float32)).astype(dt)
                      for i in range(40)})
    paddle.save(state, str(odd))
    got_odd = pdckpt.load(odd)
    assert_same(got_odd, paddle.load(str(odd)))
    assert splits(got_odd) == []
    # Unnamed tensors keep the per-tensor path (unstack's tensors would carry other names).
    plain = [paddle.to_tensor(np.full(256, i, np.float32)) for i in range(100)]
    lst = tmp_path / "list.pdparams"
    paddle.save(plain, str(lst))
    got_l, want_l = pdckpt.load(lst), paddle.load(str(lst))
    assert [type(t) for t in got_l] == [type(t) for t in want_l]
    for g, w in zip(got_l, want_l):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    assert splits(got_l) == []


def test_this_paddle_takes_views():
    """Paddle here has what the views need (_convert._views_rehome tried it), so the default
    load is the views path the tests above run as "views"."""
    from pdckpt import _convert
    assert _convert._views_rehome(paddle) is True
    assert _convert.paddle_spec(paddle)[5]() is True


def test_the_views_probe_runs_at_the_first_batch_only(tmp_path, monkeypatch):
    """The probe makes Paddle tensors (first calls in a process: milliseconds of Paddle's set-up),
    so it runs when a load first has a batch to split, once: never for a small file."""
    from pdckpt import _convert
    real, asked = _convert._views_rehome, []
    monkeypatch.setattr(_convert, "_views_rehome", lambda p: asked.append(1) or real(p))
    _convert._SPECS.clear()
    try:
        small, big = tmp_path / "small.pdparams", tmp_path / "w2.pdparams"
        paddle.save(paddle_state(w2_like(MIN - 1)), str(small))
        paddle.save(paddle_state(w2_like(3 * MIN)), str(big))
        assert_same(pdckpt.load(small), paddle.load(str(small)))
        assert asked == []
        for _ in range(2):
            got = pdckpt.load(big)
            assert_same(got, paddle.load(str(big)))
            assert view_chunks(got) == [3 * MIN]  # views, as the probe allowed
        assert asked == [1]
    finally:
        _convert._SPECS.clear()


def test_a_split_paddle_refuses_falls_back(tmp_path, monkeypatch):
    """Another Paddle, without the private methods views need and whose unstack refuses a group:
    the group goes one by one; only running out of memory would fail the load."""
    from pdckpt import _convert
    refused = []
    monkeypatch.setattr(_convert, "_views_rehome", lambda paddle: False)

    def refusing(x, axis=0, *args, **kw):
        refused.append(x.shape[0])
        raise RuntimeError("no kernel")

    monkeypatch.setattr(paddle, "unstack", refusing)
    _convert._SPECS.clear()
    try:
        path = tmp_path / "w2.pdparams"
        paddle.save(paddle_state(w2_like(50)), str(path))
        assert_same(pdckpt.load(path), paddle.load(str(path)))
        assert refused == [50]
    finally:
        _convert._SPECS.clear()


def test_tensors_over_4_kib_go_one_by_one(tmp_path, splits):
    """paddle.unstack copies slowly (under 1 GB/s): from 8 KiB a tensor made one by one is
    cheaper, so a group of 8 KiB tensors is not batched, and a group of 4 KiB ones still is.  The
    limit holds for views too (they copy nothing, so it could be lifted for them)."""
    path = tmp_path / "mid.pdparams"
    pdckpt.save(w2_like(40, (2048,)), path)  # 8 KiB each
    got = pdckpt.load(path)
    assert_same(got, paddle.load(str(path)))
    assert splits(got) == []
    pdckpt.save(w2_like(40, (1024,)), path)  # 4 KiB each
    got = pdckpt.load(path)
    assert_same(got, paddle.load(str(path)))
    assert splits(got) == [40]


def test_name_table_lookups_match_paddle_load(tmp_path, splits):
    """The name table is looked up in the loaded tree (str keys) or, for any other key, in the
    table made Python: names, order and the kept table are paddle.load's, in both modes."""
    state = paddle_state(w2_like(40))
    for k, v in list(state.items())[:3]:
        v.name = "renamed_" + v.name  # names unlike their keys
    state["nul\x00key"] = paddle.to_tensor(np.arange(256, dtype=np.float32))
    state[7] = paddle.to_tensor(np.ones(256, np.float32))  # a non-str key
    state[7].name = "seven"
    path = tmp_path / "t.pdparams"
    paddle.save(state, str(path))
    for keep in (False, True):
        got = pdckpt.load(path, keep_name_table=keep)
        want = paddle.load(str(path), keep_name_table=keep)
        assert (NAME_TABLE in got) == keep
        assert_same(got, want)
        assert got[7].name == "seven" and got["nul\x00key"].name == want["nul\x00key"].name
        if not keep:
            assert splits(got) == [42]


def test_load_releases_each_converted_entry(tmp_path, splits):
    """pdckpt.load's pass (consume=True) releases each tensor entry from the tree with its key as
    it goes (None left in both places) and, when the name table is dropped, the table before it
    starts (its names copied out); the result is still paddle.load's.  A kept table stays."""
    from pdckpt import _convert
    path = tmp_path / "w2.pdparams"
    paddle.save(paddle_state(w2_like(5000)), str(path))
    want = paddle.load(str(path))
    for drop in (True, False):
        tree = pdckpt._open_tree(str(path), {}, aligned=True)
        try:
            got = tree.convert(None, False, _convert.paddle_spec(paddle), drop, True)
            left = tree.convert()
        finally:
            tree.close()
        table = got.pop(NAME_TABLE, None)
        assert_same(got, want)
        assert (table is None) == drop
        assert list(left) == ([None] if drop else [None, NAME_TABLE]) and left[None] is None
        assert drop or left[NAME_TABLE] == table
    assert splits(got) == ([904, 4096] if splits.mode == "views" else [904, 904, 4096, 4096])
