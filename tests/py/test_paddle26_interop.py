# SPDX-License-Identifier: Apache-2.0
"""Interop with an older Paddle (issue 19): Paddle 2.6.2 (with NumPy 1.26) in its own venv, made
by scripts/setup.sh ($PDCKPT_VENV_PADDLE26).  Files Paddle 2.6 writes load exactly in pdckpt
(dtypes, bytes, LR_Scheduler, nesting, the jit.save model named by its program), and files pdckpt
writes load exactly in Paddle 2.6 (pickles in protocols 2-4, safetensors -> pickle conversions,
a .pdiparams written for 2.6's program, which 2.6 runs).  Paddle 1.8.5 (Python 3.7) is tested by
tests/py/test_paddle18_interop.py."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import PY_STAGE, ls_json, old_paddle_python, run_cli, run_old_paddle
from paddle26_worker import types  # one description of a tree's containers, both sides

WORKER = Path(__file__).with_name("paddle26_worker.py")


def _run26(*args):
    run_old_paddle("26", WORKER, *args)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("p26")
    _run26("write", d)
    return d, json.loads((d / "written.json").read_text())


def _flat(tree, prefix=""):
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}|"))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(_flat(v, f"{prefix}{i}|"))
    elif isinstance(tree, np.ndarray):
        out[prefix[:-1]] = tree
    return out


def _same(got, npz):
    want = dict(np.load(npz))
    assert sorted(got) == sorted(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert got[k].tobytes() == v.tobytes(), k


@pytest.mark.parametrize("tag,ext", [("net", ".pdparams"), ("opt", ".pdopt"),
                                     ("nested", ".pdparams")])
def test_paddle26_files_load_exactly(written, tag, ext):
    import pdckpt

    d, meta = written
    tree = pdckpt.load(str(d / (tag + ext)), return_numpy=True)
    _same(_flat(tree), d / (tag + ".npz"))
    if tag == "opt":
        assert tree["LR_Scheduler"] == meta["lr"]
    if tag == "nested":
        assert tree["b"][1] == 3.5


def test_paddle26_inference_model_named_by_its_program(written):
    d, _ = written
    assert (d / "infer" / "net.pdmodel").exists()  # 2.6 writes the legacy ProgramDesc
    listing = ls_json(d / "infer" / "net.pdiparams")
    assert listing["format"] == "inference"
    assert all(isinstance(t["key"][0], str) and "." in t["key"][0] for t in listing["tensors"])
    run_cli("verify", d / "infer" / "net", check=0)


def test_paddle26_jit_prefix_keyed_like_paddle_load(written):
    """paddle.load(prefix) of a jit.save model keys it by the structured names of
    X.pdiparams.info (what Layer.set_state_dict matches), NumPy arrays even without return_numpy
    (its _legacy_load); pdckpt.load does the same, same order and bytes, and the CLI keeps the
    variable names."""
    import pdckpt

    d, meta = written
    got = pdckpt.load(str(d / "infer" / "net"), return_numpy=True)
    assert list(got) == meta["jit_keys"] and "0.weight" in got
    _same(got, d / "jit.npz")
    dropin = pdckpt.load(str(d / "infer" / "net"))
    assert list(dropin) == meta["jit_keys"]
    assert all(type(v) is np.ndarray for v in dropin.values())
    _same(dropin, d / "jit.npz")
    names = [t["key"][0] for t in ls_json(d / "infer" / "net")["tensors"]]
    assert names == sorted(names) and len(names) == len(dropin)



def test_jit_prefix_state_written_back_by_its_info(written, tmp_path):
    """pdckpt.load(prefix) keys a jit.save model by the info's structured names, as 2.6's
    paddle.load does; save_inference_params of that state for the same program refused it
    ("found no such key"): it is matched to the program's variables by the info beside it --
    2.6's own .pdiparams byte for byte, and new weights 2.6's paddle.load(prefix) reads."""
    import pdckpt
    import pdckpt.static

    d, _ = written
    state = pdckpt.load(str(d / "infer" / "net"), return_numpy=True)
    twice = {k: v * 2 if v.dtype.kind == "f" else v for k, v in state.items()}
    for name, values in (("same", state), ("twice", twice)):
        (tmp_path / name).mkdir()
        for f in ("net.pdmodel", "net.pdiparams.info"):
            shutil.copy(d / "infer" / f, tmp_path / name / f.replace("net", "model"))
        pdckpt.static.save_inference_params(tmp_path / name / "model", values)
    assert (tmp_path / "same" / "model.pdiparams").read_bytes() == \
        (d / "infer" / "net.pdiparams").read_bytes()
    np.savez(tmp_path / "want.npz", **twice)
    _run26("read", tmp_path, tmp_path / "twice" / "model")
    _same(dict(np.load(tmp_path / "model.npz")), tmp_path / "want.npz")

@pytest.mark.parametrize("proto", [2, 4])
def test_paddle26_nested_checkpoint_keeps_ordered_dicts(written, tmp_path, proto):
    """{"model": net.state_dict(), "opt": ..., "epoch"}: 2.6 pickles the nested state dict as a
    collections.OrderedDict; pdckpt loads the same classes and a rewrite is 2.6's bytes."""
    import pdckpt

    d, meta = written
    src = d / f"ckpt_p{proto}.pdparams"
    got = pdckpt.load(str(src), return_numpy=True)
    assert types(got) == meta["ckpt_types"] and meta["ckpt_types"][1][0][1][0] == "OrderedDict"
    run_cli("convert", src, tmp_path / "ckpt.pdparams", "--protocol", proto, "--no-fsync",
            check=0)
    assert (tmp_path / "ckpt.pdparams").read_bytes() == src.read_bytes()
    # the drop-in's paddle.Tensors carry the names the (name, ndarray) tuples had
    pdckpt.save(pdckpt.load(str(src)), str(tmp_path / "ckpt_py.pdparams"), protocol=proto)
    assert (tmp_path / "ckpt_py.pdparams").read_bytes() == src.read_bytes()


def test_pdckpt_files_load_in_paddle26(written, tmp_path):
    import pdckpt

    d, meta = written
    files = []
    for proto in (2, 3, 4):
        out = tmp_path / f"net_p{proto}.pdparams"
        run_cli("convert", d / "net.pdparams", out, "--protocol", proto, "--no-fsync", check=0)
        files.append(out)
    for tag, ext in [("net", ".pdparams"), ("opt", ".pdopt"), ("nested", ".pdparams")]:
        mid = tmp_path / f"{tag}.safetensors"
        run_cli("convert", d / (tag + ext), mid, "--no-fsync", check=0)
        run_cli("convert", mid, tmp_path / f"{tag}_st{ext}", "--no-fsync", check=0)
        files.append(tmp_path / f"{tag}_st{ext}")
    pdckpt.save(pdckpt.load(str(d / "nested.pdparams")), str(tmp_path / "nested_py.pdparams"))
    files.append(tmp_path / "nested_py.pdparams")
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(d / "infer" / "net.pdmodel", deploy / "net.pdmodel")
    run_cli("convert", d / "net.pdparams", deploy / "net.pdiparams", "--out-program",
            deploy / "net.pdmodel", "--no-fsync", check=0)
    shutil.copy(d / "x.npy", tmp_path / "x.npy")
    _run26("read", tmp_path, *files, deploy / "net")
    got = json.loads((tmp_path / "read.json").read_text())
    for f in files:
        tag = f.name.replace(".", "_")
        source = f.name.split("_")[0]
        _same(dict(np.load(tmp_path / (tag + ".npz"))), d / (source + ".npz"))
        if source == "opt":
            assert got[tag + "_lr"] == meta["lr"]
    y = np.load(tmp_path / "net_y.npy")
    assert y.tobytes() == np.load(d / "y.npy").tobytes()


@pytest.fixture(scope="module")
def sharded26(tmp_path_factory):
    """A sharded checkpoint Paddle 2.6's save_state_dict wrote on 2 ranks (CPU, gloo): its
    metadata (paddle.distributed.checkpoint.metadata) records no dtype and no global shape."""
    d = tmp_path_factory.mktemp("p26_sharded")
    py = old_paddle_python("26")
    assert py.exists(), f"Paddle 2.6 venv missing at {py}: run scripts/setup.sh"
    proc = subprocess.run([str(py), "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                           "--log_dir", str(d / "log"), str(WORKER), "sharded", str(d)],
                          capture_output=True, text=True, timeout=600, cwd=d,
                          env={**os.environ, "PYTHONPATH": ""})
    logs = "".join(p.read_text()[-2000:] for p in sorted((d / "log").glob("workerlog.*")))
    assert proc.returncode == 0, proc.stdout[-2000:] + logs
    return d, json.loads((d / "sharded.json").read_text())


def test_paddle26_sharded_checkpoint_lists_and_merges(sharded26, tmp_path):
    """Issue 19 item 5: the dtype and shape of every key come from the data files (they listed
    as '?' and [] with exit 0, and dist merge failed); merged on 2 ranks, every tensor equals
    what Paddle 2.6 saved."""
    from test_dist import mpirun

    d, want = sharded26
    listing = ls_json(d / "ck")
    assert {t["key"]: [t["dtype"], t["shape"]] for t in listing["tensors"]} == want
    rows = next(t for t in listing["tensors"] if t["key"] == "rows")
    assert [p["shape"] for p in rows["pieces"]] == [[3, 4], [3, 4]]
    mpirun(2, "dist", "merge", d / "ck", tmp_path / "merged.safetensors", "--no-fsync")
    merged = ls_json(tmp_path / "merged.safetensors")
    assert {t["key"][0]: [t["dtype"], t["shape"]] for t in merged["tensors"]} == want
    import pdckpt

    got = {k: np.asarray(v) for k, v in pdckpt.load(str(tmp_path / "merged.safetensors"),
                                                     return_numpy=True).items()}
    npz = dict(np.load(d / "sharded.npz"))
    assert sorted(got) == sorted(npz)
    for k, v in npz.items():
        assert got[k].tobytes() == v.tobytes() and got[k].shape == v.shape, k


def test_paddle26_sharded_checkpoint_without_the_data_refused(sharded26, tmp_path):
    """Where a 2.6 checkpoint's data file does not hold a key its metadata lists, nothing can
    say the key's dtype: ls and merge fail naming the key and the file."""
    import pdckpt

    d, _ = sharded26
    ck = tmp_path / "ck"
    shutil.copytree(d / "ck", ck)
    pdckpt.save({"other": np.zeros(2, "float32")}, str(ck / "0_0.distcp"), format="pickle")
    for proc in (run_cli("ls", ck), run_cli("dist", "merge", ck, tmp_path / "m.safetensors")):
        assert proc.returncode == 1, proc.stdout
        assert "has no dtype and its data file 0_0.distcp holds no tensor" in proc.stderr
    assert not (tmp_path / "m.safetensors").exists()


def test_lone_pdiparams_named_by_its_info(written, tmp_path):
    """Issue 19 item 3: a .pdiparams whose program is gone but whose .pdiparams.info (Paddle 2.6's
    jit.save) is beside it lists with the variable names (the info's keys, sorted as
    save_combine stores them) and their structured names, as the program would name it; an info
    that does not match the file (a pruned program's extra entry) is refused, not guessed."""
    import pickle

    d, _ = written
    lone = tmp_path / "lone"
    lone.mkdir()
    for name in ("net.pdiparams", "net.pdiparams.info"):
        shutil.copy(d / "infer" / name, lone / name)
    by_program = ls_json(d / "infer" / "net.pdiparams", "--hash")
    got = ls_json(lone / "net.pdiparams", "--hash")
    assert got["format"] == "combined"
    assert [(t["key"], t["sha256"], t["structured_name"]) for t in got["tensors"]] == \
        [(t["key"], t["sha256"], t["structured_name"]) for t in by_program["tensors"]]
    info = pickle.loads((lone / "net.pdiparams.info").read_bytes())
    info["pruned_0.w_0"] = {"structured_name": "x.weight", "stop_gradient": False}
    (lone / "net.pdiparams.info").write_bytes(pickle.dumps(info, protocol=2))
    proc = run_cli("ls", lone / "net.pdiparams")
    assert proc.returncode == 1 and "net.pdiparams.info (9 variables" in proc.stderr, proc.stderr
    assert [t["key"] for t in ls_json(lone / "net.pdiparams", "--format", "combined")[
        "tensors"]] == [[i] for i in range(8)]


def test_pdiparams_info_written_beside_converted_combined_files(written, tmp_path):
    """Issue 19 item 3: converting into a .pdiparams writes the .pdiparams.info Paddle 2.6's
    jit.save would (stop_gradient and trainable from the info beside the program, structured
    names from IN's keys) unless one is there; Paddle 2.6's paddle.load of the model prefix then
    gives the state dict by those names.  A combined file named by its info, converted to
    another .pdiparams, keeps its names the same way."""
    import pickle
    import pdckpt

    d, _ = written
    theirs = pickle.loads((d / "infer" / "net.pdiparams.info").read_bytes())
    dep = tmp_path / "dep"
    dep.mkdir()
    shutil.copy(d / "infer" / "net.pdmodel", dep / "model.pdmodel")
    state = pdckpt.load(str(d / "net.pdparams"))  # structured keys, Paddle names kept
    renamed = {"enc." + k: v for k, v in state.items()}
    pdckpt.save(renamed, str(tmp_path / "renamed.pdparams"))
    run_cli("convert", tmp_path / "renamed.pdparams", dep / "model.pdiparams", "--out-program",
            d / "infer" / "net.pdmodel", "--no-fsync", check=0)
    ours = pickle.loads((dep / "model.pdiparams.info").read_bytes())
    assert ours == {v: dict(e, structured_name="enc." + e["structured_name"])
                    for v, e in theirs.items()}
    _run26("read", tmp_path, dep / "model")
    npz = dict(np.load(tmp_path / "model.npz"))
    want = {"enc." + k: v.numpy() for k, v in state.items()}
    assert sorted(npz) == sorted(want)
    assert all(npz[k].tobytes() == want[k].tobytes() for k in want)
    before = (dep / "model.pdiparams.info").read_bytes()  # never replaced
    run_cli("convert", d / "net.pdparams", dep / "model.pdiparams", "--out-program",
            d / "infer" / "net.pdmodel", "--no-fsync", check=0)
    assert (dep / "model.pdiparams.info").read_bytes() == before
    # combined -> combined: the names come along
    run_cli("convert", dep / "model.pdiparams", tmp_path / "copy.pdiparams", "--program",
            dep / "model.pdmodel", "--no-fsync", check=0)
    (dep / "model.pdmodel").unlink()
    assert ls_json(tmp_path / "copy.pdiparams")["tensors"] == ls_json(dep / "model.pdiparams")[
        "tensors"]
    assert "enc.0.weight" in {t.get("structured_name") for t in
                              ls_json(tmp_path / "copy.pdiparams")["tensors"]}


_DROPIN26 = """
import sys
import numpy as np
import paddle
import pdckpt
path = sys.argv[1]
sd = {f"l{i}.w_0": paddle.to_tensor(np.full(8, i, "float32")) for i in range(40)}
sd["big"] = paddle.to_tensor(np.arange(20000, dtype="float32"))
sd["ids"] = paddle.to_tensor(np.arange(6, dtype="int64"))
paddle.save(sd, path)
got, ref = pdckpt.load(path), paddle.load(path)
assert sorted(got) == sorted(ref), (sorted(got), sorted(ref))
for k in ref:
    assert isinstance(got[k], paddle.Tensor), (k, type(got[k]))
    assert got[k].dtype == ref[k].dtype and got[k].name == ref[k].name, k
    assert (got[k].numpy() == ref[k].numpy()).all(), k
pdckpt.save(got, path + ".again.pdparams")
back = paddle.load(path + ".again.pdparams")
assert all((back[k].numpy() == ref[k].numpy()).all() for k in ref)
sd["flags"] = paddle.to_tensor([True, False])  # copied: 2.6's from_dlpack has no bool
sd["half"] = paddle.to_tensor(np.arange(4, dtype="float32")).astype("bfloat16")
paddle.save(sd, path)
paddle.enable_static()  # 2.6's DenseTensor is core.LoDTensor (core.DenseTensor failed the load)
got, ref = pdckpt.load(path), paddle.load(path)
for k in ref:
    assert type(got[k]) is type(ref[k]), (k, type(got[k]), type(ref[k]))
    assert (got[k]._dtype(), got[k].shape()) == (ref[k]._dtype(), ref[k].shape()), k
    assert (np.array(got[k]) == np.array(ref[k])).all(), k
print("ok")
"""


def test_dropin_load_under_paddle26_gives_its_tensors(tmp_path):
    """pdckpt's Python module under Paddle 2.6 (same Python): a drop-in load hands Paddle DLPack
    capsules it takes (2.6's from_dlpack knows only pre-1.0 "dltensor" capsules; the versioned
    ones failed every such load), equal to paddle.load's tensors, names included, batched small
    tensors too; and the result saves back.  In static-graph mode, 2.6's DenseTensors."""
    proc = subprocess.run([str(old_paddle_python("26")), "-c", _DROPIN26,
                           str(tmp_path / "sd.pdparams")], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(PY_STAGE)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_dropin_sweep_under_paddle26():
    """tests/py/paddle26_dropin_sweep.py under Paddle 2.6: pdckpt.save writes paddle.save's bytes
    and pdckpt.load gives paddle.load's objects for tensors, lists, tuples, int keys, NumPy arrays
    beside tensors, numpy scalars, 0-d and empty tensors, every dtype (a bool tensor failed the
    drop-in load: 2.6's from_dlpack predates DLPack's bool code), optimizer states with a nested
    scheduler and checkpoints, in protocols 2-4; use_binary_format=True of every dtype and of a
    LoDTensor (pdckpt raised AttributeError under 2.6: no core.DenseTensor), static-mode loads."""
    proc = subprocess.run([str(old_paddle_python("26")), str(WORKER.with_name(
        "paddle26_dropin_sweep.py"))], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(PY_STAGE)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), \
        proc.stdout[-3000:] + proc.stderr[-3000:]


def test_paddle3_load_of_paddle26_files_equals_pdckpt_load(written):
    """The drop-in judged on 2.6's files: today's paddle.load and pdckpt.load give the same objects
    (types, keys and order, OrderedDicts, dtypes, shapes, names, bytes; return_numpy both ways)
    for its state dict, optimizer state (LR_Scheduler), nested saves, protocol 2 and 4
    checkpoints, and its jit.save prefix (NumPy arrays keyed by the info's structured names)."""
    import contextlib

    import paddle
    import pdckpt
    from test_paddle_sweep import describe

    d, _ = written
    for name in ("net.pdparams", "opt.pdopt", "nested.pdparams", "ckpt_p2.pdparams",
                 "ckpt_p4.pdparams", "infer/net"):
        for return_numpy in (False, True):
            # the prefix's program is 2.6's legacy ProgramDesc, whose variables paddle.load
            # makes anew (a fresh name generator keeps their names)
            with paddle.pir_utils.OldIrGuard() if name == "infer/net" else \
                    contextlib.nullcontext(), paddle.utils.unique_name.guard():
                want = describe(paddle.load(str(d / name), return_numpy=return_numpy))
            got = describe(pdckpt.load(str(d / name), return_numpy=return_numpy))
            assert got == want, (name, return_numpy)
