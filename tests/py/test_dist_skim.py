# SPDX-License-Identifier: Apache-2.0
"""Issue 20: resharded loads on the copy path (mmap=False) read only the bytes each box needs from
data files real Paddle wrote: the pickle is skimmed without its payloads and the boxes' bytes are
read with pread (src/formats/pickle/pickle_skim.c, src/formats/distcp/dist_read.c).  Boxes equal
numpy's slices on both paths, and the bytes the process reads (/proc/self/io rchar) stay far below
the data files' size."""
import os

import pytest

import pdckpt
from pdckpt import _native


def _rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


def _load(ck, boxes, mmap):
    tree = _native.sharded_load(str(ck), -1, boxes, mmap)
    try:
        values = tree.convert(None, True)
        return {k: v.copy() for k, v in values.items()}
    finally:
        tree.close()


def _paddle_checkpoint(paddle, np, path):
    """Three row bands of w, c split on its last dim, s whole: Paddle's own Metadata classes and
    paddle.save (what save_state_dict writes from several ranks; one process cannot be several)."""
    from paddle.distributed.flex_checkpoint.dcp.metadata import (
        LocalTensorIndex, LocalTensorMetadata, Metadata)
    rng = np.random.default_rng(7)
    full = {"w": rng.standard_normal((3000, 257)).astype("float32"),
            "c": rng.integers(-30000, 30000, size=(40, 33, 70)).astype("int16"),
            "s": rng.standard_normal((5, 3)).astype("float64")}
    pieces = [("w", (0, 0), (1000, 257), 0), ("w", (1000, 0), (1000, 257), 1),
              ("w", (2000, 0), (1000, 257), 2), ("c", (0, 0, 0), (40, 33, 35), 0),
              ("c", (0, 0, 35), (40, 33, 35), 1), ("s", (0, 0), (5, 3), 2)]
    files, sdm, storage = {}, {}, {}
    for key, off, shape, rank in pieces:
        box = full[key][tuple(slice(o, o + s) for o, s in zip(off, shape))]
        name = f"{rank}_0.distcp"
        files.setdefault(name, {})[key] = paddle.to_tensor(np.ascontiguousarray(box))
        sdm.setdefault(key, []).append(LocalTensorMetadata(
            off, shape, str(full[key].dtype), full[key].shape, False, None))
        storage[LocalTensorIndex(key, off, False, None, None, shape)] = name
    os.makedirs(path, exist_ok=True)
    for name, sd in files.items():
        paddle.save(sd, os.path.join(path, name))
    paddle.save(Metadata(sdm, storage, {}), os.path.join(path, "0.metadata"))
    return full


BOXES = [("w", (0, 0), (3000, 257)), ("w", (500, 0), (1000, 257)), ("w", (0, 100), (3000, 60)),
         ("w", (990, 3), (20, 250)), ("w", (2999, 256), (1, 1)), ("c", (0, 0, 20), (40, 33, 30)),
         ("c", (5, 7, 34), (10, 20, 2)), ("s", (1, 1), (3, 2))]


def test_boxes_from_paddle_files_read_only_their_bytes(tmp_path, paddle_np):
    paddle, np = paddle_np
    ck = tmp_path / "ck"
    full = _paddle_checkpoint(paddle, np, ck)
    for key, off, shape in BOXES:
        want = full[key][tuple(slice(o, o + s) for o, s in zip(off, shape))]
        for mmap in (False, True):
            got = _load(ck, [(key, off, shape)], mmap)[key]
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (key, off, mmap)
    # ten rows of w: the copy path reads the metadata, the skim of one file and 10 KiB of rows
    data = sum(os.path.getsize(ck / n) for n in os.listdir(ck) if n.endswith(".distcp"))
    before = _rchar()
    got = _load(ck, [("w", (10, 0), (10, 257))], False)["w"]
    read = _rchar() - before
    assert got.tobytes() == full["w"][10:20].tobytes()
    assert read < 200_000 and data > 3_000_000, (read, data)


def test_save_state_dict_file_loads_in_boxes(tmp_path, paddle_np):
    """A checkpoint paddle.distributed.save_state_dict writes itself (one process)."""
    paddle, np = paddle_np
    import paddle.distributed as dist
    rng = np.random.default_rng(8)
    state = {"emb": rng.standard_normal((1024, 96)).astype("float32"),
             "bias": rng.standard_normal((7,)).astype("float32")}
    ck = tmp_path / "ck"
    dist.save_state_dict({k: paddle.to_tensor(v) for k, v in state.items()}, str(ck))
    boxes = [("emb", (0, 0), (1024, 96)), ("emb", (300, 10), (500, 40)),
             ("bias", (2,), (5,))]
    for key, off, shape in boxes:
        want = state[key][tuple(slice(o, o + s) for o, s in zip(off, shape))]
        got = _load(ck, [(key, off, shape)], False)[key]
        assert got.tobytes() == want.tobytes(), (key, off)
    before = _rchar()
    got = _load(ck, [("emb", (300, 0), (4, 96))], False)["emb"]
    assert got.tobytes() == state["emb"][300:304].tobytes()
    assert _rchar() - before < os.path.getsize(ck / "0_0.distcp") // 2


def test_box_over_a_hole_fails_and_boxes_beside_it_load_exact(tmp_path, paddle_np):
    """The copy path fills a resharded box without zeroing it first (every byte comes from a
    piece: the load checks the pieces cover the box before it allocates).  Pieces that leave a
    hole -- rows [3, 5) of w stored nowhere -- must then fail every box that reaches into the
    hole (never return the allocation's old bytes) and load boxes beside it bit-exact, column
    bands and blocks included, on both paths."""
    from paddle.distributed.flex_checkpoint.dcp.metadata import (
        LocalTensorIndex, LocalTensorMetadata, Metadata)
    paddle, np = paddle_np
    full = np.random.default_rng(9).standard_normal((8, 8192)).astype("float32")
    ck = tmp_path / "ck"
    ck.mkdir()
    sdm, storage = {"w": []}, {}
    for rank, (lo, hi) in enumerate(((0, 3), (5, 8))):  # payloads of 96 KiB: skimmed
        name = f"{rank}_0.distcp"
        paddle.save({"w": paddle.to_tensor(full[lo:hi].copy())}, str(ck / name))
        sdm["w"].append(LocalTensorMetadata((lo, 0), (hi - lo, 8192), "float32", (8, 8192),
                                            False, None))
        storage[LocalTensorIndex("w", (lo, 0), False, None, None, (hi - lo, 8192))] = name
    paddle.save(Metadata(sdm, storage, {}), str(ck / "0.metadata"))
    for mmap in (False, True):
        for off, shape in (((0, 0), (8, 8192)), ((2, 100), (2, 50)), ((0, 4096), (8, 2048))):
            with pytest.raises(pdckpt.FormatError) as e:
                _load(ck, [("w", off, shape)], mmap)
            assert "'w'" in str(e.value) and "cover" in str(e.value), str(e.value)
        for off, shape in (((0, 0), (3, 8192)), ((0, 2048), (3, 2048)), ((5, 100), (3, 3000)),
                           ((1, 7000), (2, 1192))):
            want = full[off[0]:off[0] + shape[0], off[1]:off[1] + shape[1]]
            got = _load(ck, [("w", off, shape)], mmap)["w"]
            assert got.tobytes() == want.tobytes(), (off, shape, mmap)
