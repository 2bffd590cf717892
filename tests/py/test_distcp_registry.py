# SPDX-License-Identifier: Apache-2.0
"""The sharded checkpoint directory is a registered format (PDCKPT_FORMAT_DISTCP, issue 17 item 2;
issue 19 item 5): `pdckpt verify`, `pdckpt convert`, `pdckpt ls` and `pdckpt.load` open one through
the registry, without MPI, as the whole state merged (what `pdckpt dist merge` writes), whether
pdckpt's ranks (pdckpt_mpi_save_sharded) or Paddle's save_state_dict wrote it."""
import json
import re

import pytest

import pdckpt

from conftest import run_cli
from test_dist import mpirun

# uneven dims so every layout cuts unevenly; dtypes Paddle and numpy both name
STATE = {"linear.w": ("float32", (7, 5)), "linear.b": ("float64", (13,)),
         "emb.w": ("float16", (9, 10)), "step": ("int64", (1,)), "ids": ("int32", (11, 3))}


def _state(np, seed):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(shape) * 10).astype(dt) for k, (dt, shape) in STATE.items()}


def _same(np, got, want):
    assert set(got) == set(want)
    for k, v in want.items():
        a = got[k].numpy() if hasattr(got[k], "numpy") else np.asarray(got[k])
        assert a.dtype == v.dtype and a.shape == v.shape and a.tobytes() == v.tobytes(), k


def _reads_through_the_registry(np, ck, state, tmp_path):
    out = run_cli("verify", ck, check=0).stdout
    assert re.search(rf"OK \(distcp, {len(state)} tensors", out), out
    _same(np, pdckpt.load(str(ck)), state)
    _same(np, pdckpt.load(str(ck), format="distcp"), state)
    conv = tmp_path / "merged.safetensors"
    assert "(distcp) ->" in run_cli("convert", ck, conv, check=0).stdout
    _same(np, pdckpt.load(str(conv)), state)
    listing = json.loads(run_cli("ls", "--json", ck, check=0).stdout)  # the pieces, as before
    assert {t["key"] for t in listing["tensors"]} == set(state)
    # the same state, in the same order, as `pdckpt dist merge` writes it
    merged = tmp_path / "dist_merge.safetensors"
    mpirun(1, "dist", "merge", ck, merged)
    by_merge, by_load = pdckpt.load(str(merged)), pdckpt.load(str(ck))
    assert list(by_merge) == list(by_load)
    _same(np, by_load, {k: by_merge[k].numpy() for k in by_merge})


def test_a_sharded_dir_the_ranks_wrote(tmp_path, paddle_np):
    _, np = paddle_np
    state = _state(np, 3)
    src = tmp_path / "src.safetensors"
    pdckpt.save(state, str(src))
    ck = tmp_path / "ck"
    mpirun(3, "dist", "shard", src, ck, "--ranks-layout", "linear.*=col,emb.*=block,row")
    assert len(list(ck.glob("*_0.distcp"))) == 3
    _reads_through_the_registry(np, ck, state, tmp_path)


def test_a_sharded_dir_paddle_wrote(tmp_path, paddle_np):
    paddle, np = paddle_np
    import paddle.distributed as dist
    state = _state(np, 4)
    ck = tmp_path / "ck"
    dist.save_state_dict({k: paddle.to_tensor(v) for k, v in state.items()}, str(ck))
    assert (ck / "0.metadata").exists() and (ck / "0_0.distcp").exists()
    _reads_through_the_registry(np, ck, state, tmp_path)


def test_metadata_with_fields_a_newer_paddle_adds(tmp_path, paddle_np):
    """Paddle's develop branch adds fields to Metadata (model_type, checkpoint_version,
    paddle_commit_id ...) that 3.3.1 lacks; dataclasses pickle every field in their state, so a
    newer Paddle's metadata carries them.  Fields pdckpt does not know are ignored, on Metadata,
    LocalTensorMetadata and LocalTensorIndex alike (the decoder and the index both read fields by
    name), and the checkpoint reads as before."""
    paddle, np = paddle_np
    import pickle

    import paddle.distributed as dist
    state = _state(np, 5)
    ck = tmp_path / "ck"
    dist.save_state_dict({k: paddle.to_tensor(v) for k, v in state.items()}, str(ck))
    with open(ck / "0.metadata", "rb") as f:
        meta = pickle.load(f)
    for pieces in meta.state_dict_metadata.values():
        for m in pieces:
            object.__setattr__(m, "chunk_id", 7)
    storage = {}
    for index, file in meta.storage_metadata.items():
        object.__setattr__(index, "future_field", (1, "x"))  # frozen: a dict key
        storage[index] = file
    meta.storage_metadata = storage
    meta.model_type, meta.checkpoint_version = "ernie", "1.0"
    meta.erniebot_commit_id, meta.paddle_commit_id = None, "0123abcd"
    blob = pickle.dumps(meta, protocol=4)
    assert b"future_field" in blob and b"chunk_id" in blob and b"paddle_commit_id" in blob
    (ck / "0.metadata").write_bytes(blob)
    _reads_through_the_registry(np, ck, state, tmp_path)


def test_a_sharded_dir_without_metadata_is_named_as_incomplete(tmp_path, paddle_np):
    paddle, np = paddle_np
    import paddle.distributed as dist
    ck = tmp_path / "ck"
    dist.save_state_dict({"w": paddle.to_tensor(np.ones((3, 2), "float32"))}, str(ck))
    (ck / "0.metadata").unlink()
    proc = run_cli("verify", ck, check=1)
    assert "no complete sharded checkpoint" in proc.stderr, proc.stderr
    with pytest.raises(pdckpt.NotFoundError, match="no complete sharded checkpoint"):
        pdckpt.load(str(ck))


def test_a_fifo_named_like_the_metadata_is_refused_not_waited_on(tmp_path, paddle_np):
    """Opening any file cannot hang: the metadata is opened without blocking, and only a regular
    file is read (the registry now reaches sharded directories from verify and pdckpt.load)."""
    import os
    paddle, np = paddle_np
    import paddle.distributed as dist
    ck = tmp_path / "ck"
    dist.save_state_dict({"w": paddle.to_tensor(np.ones((3, 2), "float32"))}, str(ck))
    (ck / "0.metadata").unlink()
    os.mkfifo(ck / "0.metadata")
    proc = run_cli("verify", ck, check=1, timeout=60)
    assert "FIFO" in proc.stderr and "0.metadata" in proc.stderr, proc.stderr
