# SPDX-License-Identifier: Apache-2.0
"""pdckpt_resolve through Python (`_native.resolve`) and the CLI: for every kind of path Paddle
names a checkpoint by -- a file, a directory, an inference-model prefix, a lone parameters file
and its prefix, a sharded index, paddle.static.save's prefix -- the registry's answer is the
format `pdckpt ls` (pdckpt_load_file) reports, and what it resolves to loads the same tree.
Missing paths are refused with the registry's error, Paddle's save_dygraph hint included."""
import shutil

import numpy as np
import pytest

import pdckpt
from pdckpt import _native
from conftest import ls_json
from test_static_triple import _run as static_save


def _state():
    return {"w": np.arange(6, dtype="float32").reshape(2, 3), "b": np.ones(3, dtype="int64")}


def _agree(path):
    fmt, target, program = _native.resolve(str(path))
    assert ls_json(path)["format"] == fmt
    return fmt, target, program


def test_files_and_directories(tmp_path):
    pdckpt.save(_state(), tmp_path / "a.pdparams")
    pdckpt.save(_state(), tmp_path / "m.safetensors")
    pdckpt.save(_state(), tmp_path / "vars", format="vars-dir")
    for name, want in [("a.pdparams", "pickle"), ("m.safetensors", "safetensors"),
                       ("vars", "vars-dir")]:
        assert _agree(tmp_path / name) == (want, str(tmp_path / name), None)


def test_lone_parameters_file_and_its_prefix(tmp_path):
    pdckpt.save(_state(), tmp_path / "p.pdiparams", format="combined")
    fmt, target, program = _agree(tmp_path / "p")
    assert (target, program) == (str(tmp_path / "p.pdiparams"), None)
    assert fmt == _agree(tmp_path / "p.pdiparams")[0]
    by_prefix = pdckpt.load(str(tmp_path / "p"), return_numpy=True)
    by_file = pdckpt.load(target, return_numpy=True)
    assert len(by_file) == len(by_prefix) == 2
    assert all(np.array_equal(a, b) for a, b in zip(by_prefix, by_file))


def test_inference_prefix(fixtures_dir, tmp_path):
    src = fixtures_dir / "ppyolo_tiny-pdiparams-paddle2.4.0"
    for f in ("model.pdmodel", "model.pdiparams"):
        shutil.copy(src / f, tmp_path / f)
    assert _agree(tmp_path / "model") == ("inference", str(tmp_path / "model.pdiparams"),
                                          str(tmp_path / "model.pdmodel"))
    assert _agree(tmp_path / "model.pdiparams") == ("inference", str(tmp_path / "model.pdiparams"),
                                                    str(tmp_path / "model.pdmodel"))
    assert len(pdckpt.load(str(tmp_path / "model"))) == 358


def test_sharded_index(tmp_path):
    pdckpt.save(_state(), tmp_path / "hf", max_shard_size=40)
    index = next((tmp_path / "hf").glob("*.index.json"))
    assert _agree(index)[0] == "safetensors-sharded"
    assert _agree(tmp_path / "hf")[0] == "safetensors-sharded"


def test_static_save_prefix(tmp_path):
    static_save("save", "legacy", tmp_path)
    fmt, target, program = _agree(tmp_path / "X")
    assert (fmt, target, program) == ("pickle", str(tmp_path / "X"), str(tmp_path / "X.pdmodel"))


def test_missing_paths(tmp_path):
    with pytest.raises(pdckpt.NotFoundError, match="no-such"):
        _native.resolve(str(tmp_path / "no-such"))
    pdckpt.save(_state(), tmp_path / "d.pdparams")
    with pytest.raises(pdckpt.NotFoundError, match="name the file in full"):
        _native.resolve(str(tmp_path / "d"))
    with pytest.raises(pdckpt.NotFoundError, match="name the file in full"):
        pdckpt.load(str(tmp_path / "d"))
