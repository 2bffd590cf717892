# SPDX-License-Identifier: Apache-2.0
"""Every real Paddle fixture that is a per-variable directory, a single tensor file or a combined
file lists exactly: `pdckpt ls --json --hash` agrees with an independent stdlib reader
(refread.py) and with real Paddle's own loader, and with the facts SOURCES.md states."""
import hashlib
import os

import pytest

from conftest import FIXTURES, ls_json, run_cli
import refread

VARS_DIRS = {  # directory -> number of variable files SOURCES.md lists
    "luotao1-example-2018-02-fluid0.12": 6,
    "fit_a_line-sepfiles-2019-05": 2,
    "dqn-sepfiles-custom-names-paddle1.x": 10,
    "hand-writing-sepfiles-paddle2.1.0": 6,
    "rna-lstm-fluid1.8.3-adam-ckpt": 6,
}
# A directory whose __model__ names exactly its files is an inference model (listed through the
# program, tests/py/test_programs.py); rna-lstm's __model__ names 54 variables of which only one
# was copied, so it lists as the plain directory it is.
PLAIN_DIRS = {"rna-lstm-fluid1.8.3-adam-ckpt"}
COMBINED = {  # file -> tensor count SOURCES.md gives
    "parl-dqn-fluid1.6.3-combined/dqn_model.ckpt": 20,
    "ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams": 358,
    "pp-lcnet-x0_25-textline-ori-pir-paddle3/inference.pdiparams": 145,
}


def variable_files(directory):
    return sorted(f for f in os.listdir(directory) if f != "__model__")


@pytest.mark.parametrize("name", sorted(VARS_DIRS))
def test_vars_dir_fixture_lists_exactly(name):
    directory = FIXTURES / name
    listing = ls_json(directory, "--hash")
    assert listing["format"] == ("vars-dir" if name in PLAIN_DIRS else "inference")
    assert listing["scalars"] == []
    files = variable_files(directory)
    assert len(files) == VARS_DIRS[name]
    assert [t["key"] for t in listing["tensors"]] == [[f] for f in files]
    for entry, f in zip(listing["tensors"], files):
        ref, end = refread.read_stream((directory / f).read_bytes())
        assert end == (directory / f).stat().st_size
        assert (entry["dtype"], entry["shape"], entry["nbytes"], entry["sha256"]) == (
            ref["dtype"], ref["shape"], ref["nbytes"], ref["sha256"])


@pytest.mark.parametrize("path", sorted(COMBINED))
def test_combined_fixture_lists_exactly(path):
    named = ls_json(FIXTURES / path, "--hash")
    listing = ls_json(FIXTURES / path, "--hash", "--format", "combined")
    assert listing["format"] == "combined"
    # With its program beside it, the file lists named by that program (as Paddle reads it):
    # the same tensors in the same order, keyed by variable name.
    if named["format"] == "inference":
        assert [(t["dtype"], t["shape"], t["sha256"]) for t in named["tensors"]] == \
            [(t["dtype"], t["shape"], t["sha256"]) for t in listing["tensors"]]
        assert all(isinstance(t["key"][0], str) for t in named["tensors"])
    else:
        assert named == listing
    refs = refread.read_file(FIXTURES / path)
    assert len(listing["tensors"]) == len(refs) == COMBINED[path]
    for i, (entry, ref) in enumerate(zip(listing["tensors"], refs)):
        assert entry["key"] == [i]
        assert (entry["dtype"], entry["shape"], entry["nbytes"], entry["sha256"]) == (
            ref["dtype"], ref["shape"], ref["nbytes"], ref["sha256"])


def test_sources_md_facts():
    """Spot facts stated in SOURCES.md, checked through pdckpt's listing."""
    lstm = {t["key"][0]: t for t in ls_json(FIXTURES / "rna-lstm-fluid1.8.3-adam-ckpt")["tensors"]}
    assert lstm["@LR_DECAY_COUNTER@"]["dtype"] == "int64"
    assert lstm["@LR_DECAY_COUNTER@"]["shape"] == [1]
    assert lstm["embedding_1.w_0_moment1_0"]["shape"] == [5, 256]
    assert lstm["embedding_1.w_0_beta2_pow_acc_0"]["shape"] == [1]
    dqn = {t["key"][0]: t for t in ls_json(FIXTURES / "dqn-sepfiles-custom-names-paddle1.x")["tensors"]}
    assert dqn["policy_conv1"]["shape"] == [32, 4, 5, 5]
    assert dqn["policy_fc1"]["shape"] == [6400, 6]
    ppyolo = ls_json(FIXTURES / "ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams")["tensors"]
    assert ppyolo[0]["shape"] == [8] and all(t["dtype"] == "float32" for t in ppyolo)


def test_real_paddle_agrees(paddle_np):
    """paddle.load reads the same tensors pdckpt lists (single files and a variable directory)."""
    paddle, np = paddle_np
    directory = FIXTURES / "hand-writing-sepfiles-paddle2.1.0"
    listing = {t["key"][0]: t for t in ls_json(directory, "--hash")["tensors"]}
    for f in variable_files(directory):
        arr = paddle.load(str(directory / f), return_numpy=True)
        assert list(arr.shape) == listing[f]["shape"]
        assert hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() == listing[f]["sha256"]


def test_verify_accepts_every_fixture():
    for path in [FIXTURES / d for d in VARS_DIRS] + [FIXTURES / p for p in COMBINED]:
        proc = run_cli("verify", path, check=0)
        assert proc.stdout.startswith(f"{path}: OK (")
