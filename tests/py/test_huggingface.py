# SPDX-License-Identifier: Apache-2.0
"""The Hugging Face workflow against the real huggingface_hub and safetensors packages.

* Layout: for the same state dict and limit, `pdckpt.save(..., max_shard_size=)` writes exactly
  the files huggingface_hub's split + safetensors' writer + its index JSON write (names, every
  byte), for split-heavy limits, one shard, oversized tensors and non-ASCII names.
* Reading: checkpoints laid out by huggingface_hub and PaddleNLP-style sharded `.pdparams` written
  by real Paddle load through pdckpt.load / pdckpt.open / `pdckpt ls|verify|convert`, from the
  index file or its directory.
* metadata= / __metadata__ / Reader.metadata() / get_slice, the F8 dtypes of safetensors' table,
  and failed saves that leave nothing behind.
"""
import json
import os
import struct

import ml_dtypes
import numpy as np
import pytest
from conftest import run_cli
from huggingface_hub import split_state_dict_into_shards_factory
from safetensors import TensorSpec, safe_open, serialize
from safetensors.numpy import load_file, save_file

import pdckpt


def state_dict(seed=0):
    rng = np.random.default_rng(seed)
    sd = {f"model.layers.{i}.mlp.weight": rng.standard_normal((48, 32)).astype(np.float32)
          for i in range(5)}
    sd["lm_head.weight"] = rng.standard_normal((150, 100)).astype(np.float32)  # > the limit
    sd["model.embed.weight"] = rng.standard_normal((40, 16)).astype(ml_dtypes.bfloat16)
    sd["model.norm.bias"] = rng.standard_normal(16).astype(np.float16)
    sd["position_ids"] = np.arange(64, dtype=np.int64)
    sd["mask"] = rng.integers(0, 2, size=(4, 4)).astype(bool)
    sd["größe.ü"] = rng.standard_normal(3).astype(np.float64)
    return sd


def hf_reference(sd, directory, limit, metadata=None):
    """What huggingface_hub.save_torch_state_dict writes, without torch: its split, safetensors'
    writer with metadata {"format": "pt"}, and its index (json.dump(index, f, indent=2))."""
    split = split_state_dict_into_shards_factory(
        sd, get_storage_size=lambda a: a.nbytes, filename_pattern="model{suffix}.safetensors",
        max_shard_size=limit)
    os.makedirs(directory)
    per_file = {"format": "pt"}
    if not split.is_sharded:
        per_file.update(metadata or {})
    for filename, keys in split.filename_to_tensors.items():
        save_file({k: sd[k] for k in keys}, os.path.join(directory, filename), metadata=per_file)
    if split.is_sharded:
        index = {"metadata": {**split.metadata, **(metadata or {})},
                 "weight_map": split.tensor_to_filename}
        with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
    return split


def read_all(directory):
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory))}


@pytest.mark.parametrize("limit", ["20KB", 6144, "30KB", "1MB", "5GB"])
def test_layout_is_huggingface_hubs_byte_for_byte(tmp_path, limit):
    sd = state_dict()
    split = hf_reference(sd, tmp_path / "ref", limit)
    pdckpt.save(sd, tmp_path / "ours", max_shard_size=limit, metadata={"format": "pt"})
    ref, ours = read_all(tmp_path / "ref"), read_all(tmp_path / "ours")
    assert list(ours) == list(ref)
    assert len(ref) == (1 if not split.is_sharded else len(split.filename_to_tensors) + 1)
    for name in ref:
        assert ours[name] == ref[name], name
    if split.is_sharded:
        assert len(split.filename_to_tensors) >= 3  # the limits above really split
        # the oversized lm_head got a shard of its own, before the shard being filled
        assert ["lm_head.weight"] in split.filename_to_tensors.values()


def test_names_that_need_escapes_byte_for_byte(tmp_path):
    """Control characters, quotes, DEL and characters beyond the BMP in tensor names: the shard
    headers escape them as safetensors' writer does, the index as json.dump does."""
    rng = np.random.default_rng(3)
    odd = ["tab\there", "nl\nx", 'q"uo\\te', "ctl\x01\x1f\x7f", "emoji\U0001F600", "\b\f\r"]
    sd = {name: rng.standard_normal((40, 40)).astype(np.float32) for name in odd}
    hf_reference(sd, tmp_path / "ref", "10KB")
    pdckpt.save(sd, tmp_path / "ours", max_shard_size="10KB", metadata={"format": "pt"})
    ref, ours = read_all(tmp_path / "ref"), read_all(tmp_path / "ours")
    assert list(ours) == list(ref) and len(ref) == len(odd) + 1
    for name in ref:
        assert ours[name] == ref[name], name


def test_layout_same_through_the_cli(tmp_path):
    """convert --max-shard-size keeps the input's order (a pickle: insertion order)."""
    sd = {k: v for k, v in state_dict(1).items() if v.dtype != ml_dtypes.bfloat16}
    pdckpt.save(sd, tmp_path / "m.pdparams")
    hf_reference(sd, tmp_path / "ref", "20KB")
    run_cli("convert", tmp_path / "m.pdparams", tmp_path / "ours", "--max-shard-size", "20KB",
            check=0)
    ref, ours = read_all(tmp_path / "ref"), read_all(tmp_path / "ours")
    # the pickle carried no {"format": "pt"}: the index and tensor bytes are the same, the shard
    # headers differ only by that metadata
    assert list(ours) == list(ref)
    assert ours["model.safetensors.index.json"] == ref["model.safetensors.index.json"]
    for name in ref:
        if name.endswith(".safetensors"):
            mine, theirs = load_file(tmp_path / "ours" / name), load_file(tmp_path / "ref" / name)
            assert list(mine) == list(theirs)
            assert all(np.array_equal(mine[k], theirs[k]) for k in mine)
    bad = run_cli("convert", tmp_path / "m.pdparams", tmp_path / "x", "--max-shard-size", "5XB")
    assert bad.returncode == 2 and "invalid value '5XB' for --max-shard-size" in bad.stderr


def test_reads_huggingface_layout(tmp_path):
    sd = state_dict()
    hf_reference(sd, tmp_path / "hf", "20KB")
    index = tmp_path / "hf" / "model.safetensors.index.json"
    for source in (tmp_path / "hf", index):
        got = pdckpt.load(source, return_numpy=True, exact_dtypes=True)
        assert list(got) == list(json.loads(index.read_text())["weight_map"])  # weight_map order
        assert "__metadata__" not in got
        for k, v in sd.items():
            assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k
    with pdckpt.open(tmp_path / "hf") as r:
        assert r.format == "safetensors-sharded"
        assert "__metadata__" not in r.keys() and len(r) == len(sd)
        assert r.metadata() == {"format": "pt"}
        assert r.tensor("lm_head.weight").shape == (150, 100)
        assert r.get_slice("lm_head.weight").get_shape() == [150, 100]
        assert np.array_equal(r.get_slice("lm_head.weight")[10:13], sd["lm_head.weight"][10:13])
    listing = json.loads(run_cli("ls", "--json", index, check=0).stdout)
    assert listing["format"] == "safetensors-sharded"
    assert len(listing["tensors"]) == len(sd)
    out = run_cli("verify", tmp_path / "hf", check=0).stdout
    assert f"{len(sd)} tensors" in out
    run_cli("convert", index, tmp_path / "one.safetensors", check=0)
    one = load_file(tmp_path / "one.safetensors")
    assert all(np.array_equal(one[k], sd[k]) for k in sd if sd[k].dtype != ml_dtypes.bfloat16)
    with safe_open(tmp_path / "one.safetensors", framework="np") as f:
        assert f.metadata() == {"format": "pt"}


def test_get_slice_reads_like_safetensors(tmp_path):
    sd = state_dict()
    save_file({k: v for k, v in sd.items() if v.dtype != ml_dtypes.bfloat16},
              tmp_path / "m.safetensors")
    with pdckpt.open(tmp_path / "m.safetensors") as r, \
            safe_open(tmp_path / "m.safetensors", framework="np") as theirs:
        for key in ("lm_head.weight", "position_ids", "mask"):
            for index in (slice(1, 3), slice(None, None, 3), (slice(1, 3), slice(None, 4))):
                if len(sd[key].shape) == 1 and isinstance(index, tuple):
                    continue
                mine, ref = r.get_slice(key)[index], theirs.get_slice(key)[index]
                assert mine.dtype == ref.dtype and np.array_equal(mine, ref)
                assert mine.flags.writeable and mine.base is None  # a copy of those rows only
        assert len(r.get_slice("lm_head.weight")) == 150


def test_metadata_round_trip_and_load_never_returns_it(tmp_path, paddle_np):
    paddle, np_ = paddle_np
    layer = paddle.nn.Linear(4, 3)
    pdckpt.save(layer.state_dict(), tmp_path / "m.safetensors",
                metadata={"format": "pt", "source": "pdckpt"})
    # The user's strings, and pdckpt's own "pdckpt.tree" (the Paddle names of a state dict:
    # docs/formats.md), which other readers ignore.
    with safe_open(tmp_path / "m.safetensors", framework="np") as f:
        meta = f.metadata()
    assert {k: meta[k] for k in ("format", "source")} == {"format": "pt", "source": "pdckpt"}
    assert set(meta) == {"format", "source", "pdckpt.tree"}
    state = pdckpt.load(tmp_path / "m.safetensors")
    assert sorted(state) == ["bias", "weight"]
    fresh = paddle.nn.Linear(4, 3)
    missing, unexpected = fresh.set_state_dict(state)
    assert not missing and not unexpected
    assert np_.array_equal(fresh.weight.numpy(), layer.weight.numpy())
    with pdckpt.open(tmp_path / "m.safetensors") as r:
        assert sorted(r.keys()) == ["bias", "weight"]
        assert r.metadata() == {"format": "pt", "source": "pdckpt"}  # pdckpt.tree is its own
    with pdckpt.open(tmp_path / "m.safetensors") as r:
        pass
    save_file({"w": np_.zeros(2, np_.float32)}, tmp_path / "plain.safetensors")
    with pdckpt.open(tmp_path / "plain.safetensors") as r:
        assert r.metadata() is None and r.keys() == ["w"]
    with pytest.raises(ValueError, match="safetensors"):
        pdckpt.save({"w": np_.zeros(2)}, tmp_path / "m.pdparams", metadata={"a": "b"})
    with pytest.raises(ValueError, match="several files"):
        pdckpt.save({"w": np_.zeros(2)}, __import__("io").BytesIO(), max_shard_size=10)
    with pytest.raises(pdckpt.ArgumentError, match="5XB"):
        pdckpt.save({"w": np_.zeros(2)}, tmp_path / "s", max_shard_size="5XB")
    with pytest.raises(TypeError, match="str to str"):
        pdckpt.save({"w": np_.zeros(2)}, tmp_path / "m.safetensors", metadata={"a": 1})


def raw_safetensors(tensors, metadata=None):
    """safetensors' own writer over raw bytes (dtypes by their framework names)."""
    arrays = {k: np.frombuffer(data, np.uint8).copy() for k, (_, _, data) in tensors.items()}
    specs = {k: TensorSpec(dtype=dt, shape=shape, data_ptr=arrays[k].ctypes.data,
                           data_len=arrays[k].nbytes)
             for k, (dt, shape, _) in tensors.items()}
    return bytes(serialize(specs, metadata=metadata))


def test_float8_dtypes_of_safetensors_table(tmp_path):
    tensors = {"fnuz": ("float8_e4m3fnuz", [2, 3], bytes(range(6))),
               "e5fnuz": ("float8_e5m2fnuz", [4], bytes(range(10, 14))),
               "scale": ("float8_e8m0fnu", [3], bytes([127, 128, 120])),
               "e4m3": ("float8_e4m3fn", [2], b"\x38\x40")}
    blob = raw_safetensors(tensors)
    (tmp_path / "f8.safetensors").write_bytes(blob)
    listing = json.loads(run_cli("ls", "--json", tmp_path / "f8.safetensors", check=0).stdout)
    assert {t["key"][0]: t["dtype"] for t in listing["tensors"]} == {
        "fnuz": "float8_e4m3fnuz", "e5fnuz": "float8_e5m2fnuz", "scale": "float8_e8m0fnu",
        "e4m3": "float8_e4m3fn"}
    run_cli("convert", tmp_path / "f8.safetensors", tmp_path / "again.safetensors", check=0)
    assert (tmp_path / "again.safetensors").read_bytes() == blob  # unchanged, byte for byte
    got = pdckpt.load(tmp_path / "f8.safetensors", return_numpy=True, exact_dtypes=True)
    assert got["fnuz"].dtype == ml_dtypes.float8_e4m3fnuz
    assert got["scale"].dtype == ml_dtypes.float8_e8m0fnu
    assert got["fnuz"].view(np.uint8).tobytes() == bytes(range(6))
    raw = pdckpt.load(tmp_path / "f8.safetensors", return_numpy=True)
    assert raw["e5fnuz"].dtype == np.uint8
    pdckpt.save(got, tmp_path / "from_numpy.safetensors")  # ml_dtypes arrays keep their dtype
    assert (tmp_path / "from_numpy.safetensors").read_bytes() == blob
    bad = run_cli("convert", tmp_path / "f8.safetensors", tmp_path / "x.pdparams")
    assert bad.returncode == 1 and "float8_e" in bad.stderr and not (tmp_path / "x.pdparams").exists()
    (tmp_path / "f4.safetensors").write_bytes(
        raw_safetensors({"q": ("float4_e2m1fn_x2", [2, 2], b"\x12\x34\x56\x78")}))
    bad = run_cli("ls", tmp_path / "f4.safetensors")
    assert bad.returncode == 1 and "dtype F4 packs 4-bit elements" in bad.stderr
    assert "offset" in bad.stderr


def test_paddlenlp_sharded_pdparams(tmp_path, paddle_np):
    """PaddleNLP's layout: model_state-0000k-of-0000n.pdparams (paddle.save of each shard's dict)
    + model_state.pdparams.index.json."""
    paddle, np_ = paddle_np
    model = paddle.nn.Sequential(paddle.nn.Linear(16, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, 8))
    sd = model.state_dict()
    keys = list(sd)
    shards = {"model_state-00001-of-00002.pdparams": keys[:2],
              "model_state-00002-of-00002.pdparams": keys[2:]}
    weight_map = {}
    for name, ks in shards.items():
        paddle.save({k: sd[k] for k in ks}, str(tmp_path / name))
        weight_map.update({k: name for k in ks})
    total = sum(int(np_.prod(sd[k].shape)) * 4 for k in keys)
    (tmp_path / "model_state.pdparams.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True))
    got = pdckpt.load(tmp_path)
    fresh = paddle.nn.Sequential(paddle.nn.Linear(16, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, 8))
    missing, unexpected = fresh.set_state_dict(got)
    assert not missing and not unexpected
    for k in keys:
        assert np_.array_equal(fresh.state_dict()[k].numpy(), sd[k].numpy())
    assert json.loads(run_cli("ls", "--json", tmp_path, check=0).stdout)["format"] == "pickle-sharded"
    run_cli("verify", tmp_path / "model_state.pdparams.index.json", check=0)
    run_cli("convert", tmp_path, tmp_path / "hf", "--max-shard-size", "1KB", check=0)
    back = pdckpt.load(tmp_path / "hf", return_numpy=True)
    assert all(np_.array_equal(back[k], sd[k].numpy()) for k in keys)
    # and written: PaddleNLP's names, each shard a pickle paddle.load reads
    pdckpt.save(sd, tmp_path / "out" / "model_state.pdparams", max_shard_size=1000)
    index = json.loads((tmp_path / "out" / "model_state.pdparams.index.json").read_text())
    assert index["metadata"]["total_size"] == total
    for name in set(index["weight_map"].values()):
        assert name.startswith("model_state-000") and name.endswith(".pdparams")
        part = paddle.load(str(tmp_path / "out" / name))
        for k in part:
            if k != "StructuredToParameterName@@":
                assert index["weight_map"][k] == name
                assert np_.array_equal(part[k].numpy(), sd[k].numpy())


def test_failed_save_leaves_nothing_and_keeps_the_old_checkpoint(tmp_path):
    sd = state_dict()
    pdckpt.save(sd, tmp_path / "ck", max_shard_size="20KB")
    before = read_all(tmp_path / "ck")
    bad = dict(sd)
    bad["zzz.complex"] = np.zeros(3, np.complex128)  # in the last shard: earlier ones are written
    with pytest.raises(pdckpt.UnsupportedError, match="complex128"):
        pdckpt.save(bad, tmp_path / "ck", max_shard_size="20KB")
    assert read_all(tmp_path / "ck") == before  # no temporaries, no new shard, same index
    fresh = tmp_path / "fresh"
    with pytest.raises(pdckpt.UnsupportedError):
        pdckpt.save(bad, fresh, max_shard_size="20KB")
    assert not fresh.exists()  # not even the directory the failed save made


def test_hostile_index_through_python(tmp_path):
    sd = state_dict()
    pdckpt.save(sd, tmp_path / "ck", max_shard_size="20KB")
    index = tmp_path / "ck" / "model.safetensors.index.json"
    doc = json.loads(index.read_text())
    doc["weight_map"]["lm_head.weight"] = "../../etc/model.safetensors"
    index.write_text(json.dumps(doc))
    with pytest.raises(pdckpt.FormatError) as e:
        pdckpt.load(tmp_path / "ck")
    assert e.value.source.endswith("model.safetensors.index.json") and e.value.offset > 0
    assert "'..' path component" in str(e.value)
    huge = struct.pack("<Q", 10)  # not JSON at all
    index.write_bytes(huge)
    with pytest.raises(pdckpt.FormatError):
        pdckpt.load(index)


def test_sharded_save_removes_only_its_own_other_form(tmp_path):
    """A sharded save removes the single "model.safetensors" of an earlier save (it would shadow
    the index), and a single-file save the index of an earlier sharded one -- but only when that
    is what it is: a user's file, a directory or a link bearing the name stops the save before
    anything is written (found by the attack pass: any file there was unlinked)."""
    sd = state_dict()
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "model.safetensors").write_text("my notes, not a checkpoint")
    (ck / "notes.txt").write_text("kept")
    with pytest.raises(pdckpt.ArgumentError, match="not removed: expected the single file") as e:
        pdckpt.save(sd, ck, max_shard_size="20KB")
    assert e.value.source.endswith("model.safetensors")
    assert read_all(ck) == {"model.safetensors": b"my notes, not a checkpoint", "notes.txt": b"kept"}
    (ck / "model.safetensors").unlink()
    os.symlink(tmp_path / "elsewhere.safetensors", ck / "model.safetensors")
    with pytest.raises(pdckpt.ArgumentError, match="found a symbolic link"):
        pdckpt.save(sd, ck, max_shard_size="20KB")
    (ck / "model.safetensors").unlink()
    pdckpt.save({"x": np.ones(3, np.float32)}, ck / "model.safetensors")  # pdckpt's own: goes
    pdckpt.save(sd, ck, max_shard_size="20KB")
    assert not (ck / "model.safetensors").exists() and (ck / "notes.txt").read_text() == "kept"
    index = ck / "model.safetensors.index.json"
    shards = read_all(ck)
    # the other way round: a single-file save removes the earlier index, not a foreign JSON
    saved = index.read_bytes()
    index.write_text('{"not": "an index"}')
    with pytest.raises(pdckpt.ArgumentError, match="expected the shard index"):
        pdckpt.save(sd, ck, max_shard_size="5GB")
    assert index.read_text() == '{"not": "an index"}' and not (ck / "model.safetensors").exists()
    with open(index, "r+b") as f:  # far larger than any index: refused unread (sparse file)
        f.truncate(200_000_000)
    with pytest.raises(pdckpt.ArgumentError, match="expected the shard index"):
        pdckpt.save(sd, ck, max_shard_size="5GB")
    index.write_bytes(saved)
    pdckpt.save(sd, ck, max_shard_size="5GB")
    assert not index.exists() and (ck / "model.safetensors").exists()
    assert set(shards) - {"model.safetensors.index.json"} < set(os.listdir(ck))


def test_sharded_save_refuses_a_directory_at_a_name_before_writing(tmp_path):
    """A directory (or FIFO) where a shard or the index goes is refused up front: before, the
    shards were renamed into place and the index's rename then failed, leaving them behind."""
    sd = state_dict()
    for name in ("model.safetensors.index.json", "model-00002-of-00003.safetensors"):
        ck = tmp_path / name.split(".")[0].replace("-", "_")
        (ck / name).mkdir(parents=True)
        with pytest.raises(pdckpt.ArgumentError, match="expected a regular file, found a directory"):
            pdckpt.save(sd, ck, max_shard_size="20KB")
        assert os.listdir(ck) == [name] and os.listdir(ck / name) == []
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "model.safetensors.index.json")
    with pytest.raises(pdckpt.ArgumentError, match="found a FIFO"):
        pdckpt.save(sd, fifo, max_shard_size="20KB")
    assert os.listdir(fifo) == ["model.safetensors.index.json"]


def test_missing_shard_and_empty_index_errors_say_where(tmp_path):
    """A shard the index names but the directory lacks: the error names the shard, the index
    and the entry's offset in it; an empty index says the JSON text ended."""
    sd = state_dict()
    pdckpt.save(sd, tmp_path / "ck", max_shard_size="20KB")
    index = tmp_path / "ck" / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"a": "gone.safetensors"}}')
    with pytest.raises(pdckpt.NotFoundError) as e:
        pdckpt.load(tmp_path / "ck")
    assert e.value.source.endswith("gone.safetensors")
    assert f"named by {index} at offset 16" in str(e.value)  # the entry "a"
    index.write_text("")
    with pytest.raises(pdckpt.FormatError, match="found the end of the JSON text") as e:
        pdckpt.load(tmp_path / "ck")
    assert e.value.offset == 0 and e.value.source.endswith("index.json")
