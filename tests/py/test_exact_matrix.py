# SPDX-License-Identifier: Apache-2.0
"""Issue 19's interop matrix, against real Paddle 3.x (the venv's): every format pdckpt writes
(pickle, safetensors, combined .pdiparams, vars-dir, tnum) x {fp32, fp16, bf16, float8, int64,
bool, complex64, 0-d, empty} x {state dict, optimizer state with master_weights and
LR_Scheduler, nested dict}.  Each source is what real Paddle writes (paddle.save; float8, which a
pickle cannot hold, comes from pdckpt.save to safetensors), each cell converts it with the CLI
and back, and the result must list exactly like the source -- keys, nesting, dtypes, shapes,
SHA-256 of the bytes, non-tensor values, and Paddle names where the format keeps names (pickle,
safetensors) -- or the conversion must refuse, naming what the target cannot hold.  Small tensors
keep the 135 cells fast.

Then every ordered pair A -> B -> A of the nine formats pdckpt writes (adding dygraph-dir, both
sharded formats and the single-tensor file) on one tree per kind holding every dtype, the same
for the Python route (pdckpt.save writes what convert writes), and regressions the pairs found.
The older Paddles (2.6 and 1.8.5, each in its own venv) are in test_paddle26_interop.py and
test_paddle18_interop.py."""
import warnings

import numpy as np
import pytest

from conftest import ls_json, run_cli

warnings.filterwarnings("ignore")
import paddle  # noqa: E402

import pdckpt  # noqa: E402

DTYPES = ["float32", "float16", "bfloat16", "float8_e4m3fn", "int64", "bool", "complex64", "0-d",
          "empty"]
TREES = ["state", "optimizer", "nested"]
TARGETS = {"pickle": "out.pdparams", "safetensors": "out.safetensors", "combined": "out.pdiparams",
           "vars-dir": "out_vars", "tnum": "out.tnum"}
NAMED = {"pickle", "safetensors"}  # formats that keep a Paddle name apart from the key


def tensor(dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == "0-d":
        return paddle.to_tensor(np.float32(rng.standard_normal()))
    if dtype == "empty":
        return paddle.zeros([0, 3], dtype="float32")
    base = paddle.to_tensor(rng.standard_normal((2, 3)).astype(np.float32) * 4)
    if dtype == "complex64":
        return paddle.complex(base, -base)
    if dtype == "bool":
        return base > 0
    return base.astype(dtype)


def tree(kind, dtype):
    t, f32 = tensor(dtype, 1), tensor("float32", 2)
    if kind == "state":
        return {"linear.weight": t, "linear.bias": f32}
    if kind == "optimizer":  # what an AMP optimizer's state_dict holds
        return {"linear_0.w_0_moment1_0": t, "master_weights": {"linear_0.w_0": f32},
                "LR_Scheduler": {"last_epoch": 3, "last_lr": 0.05}}
    return {"model": {"encoder": {"w": t}, "head": [f32]}}


def expected_refusal(target, kind, dtype):
    """The part of the error a refusal must contain, or None when the round trip must succeed."""
    if target in ("combined", "vars-dir", "tnum") and kind != "state":
        return "nested dict"  # a flat list of tensors cannot hold the nesting
    if target == "pickle" and dtype == "float8_e4m3fn":
        return "float8_e4m3fn, which a pickle holds as int8"
    return None


def listing(path, *extra, names=True):
    got = ls_json(path, "--hash", *extra)
    rows = []
    for t in got["tensors"]:
        row = dict(t)
        if not names:
            row.pop("name", None)
        rows.append(row)
    scalars = [s for s in got["scalars"] if s["key"][0] != "StructuredToParameterName@@"]
    return sorted(rows, key=lambda r: r["key"]), scalars


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(tree kind, dtype) -> the source file real Paddle (or, for float8, pdckpt) wrote."""
    root = tmp_path_factory.mktemp("matrix_sources")
    out = {}
    for kind in TREES:
        for dtype in DTYPES:
            obj = tree(kind, dtype)
            if dtype == "float8_e4m3fn":  # paddle.save would store int8 (and load int8)
                path = root / f"{kind}_{dtype}.safetensors"
                pdckpt.save(obj, path)
            else:
                path = root / f"{kind}_{dtype}.pdparams"
                paddle.save(obj, str(path))
            out[kind, dtype] = path
    return out


def back_args(target, written):
    """Reading a target back: a combined file needs its names, in the order it stores them
    (byte-wise sorted, as Paddle's save_combine does)."""
    if target != "combined":
        return ()
    return ("--names", ",".join(sorted(written)))


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind", TREES)
def test_round_trip_or_named_refusal(tmp_path, sources, target, kind):
    for dtype in DTYPES:
        src = sources[kind, dtype]
        out = tmp_path / f"{dtype}_{TARGETS[target]}"
        to = ("--to", target) if target in ("vars-dir", "tnum") else ()
        proc = run_cli("convert", src, out, *to, "--no-fsync")
        refusal = expected_refusal(target, kind, dtype)
        cell = f"{kind} x {dtype} -> {target}"
        if refusal:
            assert proc.returncode == 1, (cell, proc.stdout)
            assert refusal in proc.stderr, (cell, proc.stderr)
            assert not out.exists(), cell  # nothing half-written
            continue
        assert proc.returncode == 0, (cell, proc.stderr)
        want = listing(src, names=target in NAMED)
        written = [] if target != "combined" else \
            [".".join(map(str, r["key"])) for r in ls_json(src)["tensors"]]
        back = tmp_path / f"{dtype}_back{src.suffix}"
        run_cli("convert", out, back, *back_args(target, written), "--no-fsync", check=0)
        assert listing(back, names=target in NAMED) == want, cell
        if back.suffix == ".pdparams":  # Paddle itself reads the round-tripped file
            theirs, ours = paddle.load(str(src)), paddle.load(str(back))
            assert sorted(theirs) == sorted(ours), cell


# ---- every ordered pair of the formats pdckpt writes ----

PAIR_FORMATS = {"pickle": "a.pdparams", "safetensors": "a.safetensors", "combined": "a.pdiparams",
                "vars-dir": "a_vars", "tnum": "a.tnum", "dygraph-dir": "a_dygraph",
                "safetensors-sharded": "a_hf", "pickle-sharded": "a_pkl_shards",
                "tensor": "a.tensor"}
PICKLED = {"pickle", "pickle-sharded"}  # float8 has no pickle form Paddle reads back
FLAT = set(PAIR_FORMATS) - {"pickle", "safetensors"}  # no nesting, no non-tensor leaves


def pair_refusal(fmt, kind, fp8):
    """What writing the all-dtypes tree of `kind` as `fmt` must be refused for, or None."""
    if fmt in FLAT and kind != "state":
        return "found a nested dict"
    if fmt == "tensor":
        return "holds exactly one tensor"
    if fmt in PICKLED and fp8:
        return "which a pickle holds as int8"
    return None


PAIR_NAMED = NAMED | {"safetensors-sharded", "pickle-sharded"}
# small shards, so that a sharded target holds several (one shard and no index would not be
# read back as a sharded checkpoint)
WRITE_ARGS = {"safetensors-sharded": ("--max-shard-size", "64"),
              "pickle-sharded": ("--max-shard-size", "64")}


def convert(src, out, fmt, *extra):
    return run_cli("convert", src, out, "--to", fmt, *WRITE_ARGS.get(fmt, ()), *extra,
                   "--no-fsync")


@pytest.fixture(scope="module")
def all_dtype_sources(tmp_path_factory):
    """(tree kind, has float8) -> one file holding the tree of every dtype under "<dtype>."
    keys: real paddle.save for the dtypes a pickle holds, pdckpt's safetensors for float8."""
    root = tmp_path_factory.mktemp("pair_sources")
    out = {}
    for kind in TREES:
        for fp8 in (False, True):
            obj = {f"{d}.{k}": v for d in DTYPES if (d == "float8_e4m3fn") == fp8
                   for k, v in tree(kind, d).items()}
            path = root / f"{kind}_{fp8}.{'safetensors' if fp8 else 'pdparams'}"
            pdckpt.save(obj, path) if fp8 else paddle.save(obj, str(path))
            out[kind, fp8] = path
    return out


def _read_args(fmt, source, *source_args):
    """A combined file needs its names in stored order: the byte-wise sorted keys of the tree
    it was written from (`source`, read with `source_args`)."""
    if fmt != "combined":
        return ()
    keys = [".".join(map(str, t["key"])) for t in ls_json(source, *source_args)["tensors"]]
    return ("--names", ",".join(sorted(keys)))


def _renames(path, args):
    """key -> Paddle name of the tensors of `path` whose name differs from their key."""
    got = ls_json(path, *args)["tensors"]
    return {".".join(map(str, t["key"])): t["name"] for t in got
            if t.get("name") and t["name"] != ".".join(map(str, t["key"]))}


@pytest.mark.parametrize("kind", TREES)
def test_every_format_pair_round_trips(tmp_path, all_dtype_sources, kind):
    """A -> B -> A for every ordered pair of formats pdckpt writes: the result lists exactly as
    A's file (keys, nesting, dtypes, shapes, bytes, non-tensor values; Paddle names where both
    keep them), or writing B is refused naming what B cannot hold, leaving nothing behind."""
    for fp8 in (False, True):
        src = all_dtype_sources[kind, fp8]
        firsts = {}
        for a, name in PAIR_FORMATS.items():
            path = tmp_path / f"{fp8}_{name}"
            proc = convert(src, path, a)
            want = pair_refusal(a, kind, fp8)
            assert (proc.returncode == 1) == bool(want), (kind, fp8, a, proc.stderr)
            if want:
                assert want in proc.stderr and not path.exists(), (kind, fp8, a, proc.stderr)
            else:
                firsts[a] = path
        for a, a_path in firsts.items():
            for b, name in PAIR_FORMATS.items():
                if b == a:
                    continue
                cell = f"{kind} fp8={fp8}: {a} -> {b} -> {a}"
                b_path = tmp_path / f"{fp8}_{a}_{name}"
                a_args = _read_args(a, src)
                proc = convert(a_path, b_path, b, *a_args)
                refusal = pair_refusal(b, kind, fp8)
                if refusal:
                    assert proc.returncode == 1 and refusal in proc.stderr, (cell, proc.stderr)
                    assert not b_path.exists(), cell
                    continue
                assert proc.returncode == 0, (cell, proc.stderr)
                renames = _renames(a_path, a_args) if b == "dygraph-dir" else {}
                for key, name in renames.items():  # said, not silent
                    assert f"'{key}' is stored as '{name}'" in proc.stderr or \
                        "the first 8 listed" in proc.stderr, (cell, proc.stderr)
                back = tmp_path / f"{fp8}_{a}_{b}_back_{PAIR_FORMATS[a]}"
                proc = convert(b_path, back, a, *_read_args(b, a_path, *a_args))
                assert proc.returncode == 0, (cell, proc.stderr)
                rows, scalars = listing(a_path, *a_args, names=a in PAIR_NAMED and b in PAIR_NAMED)
                for row in rows:
                    row["key"] = [renames.get(".".join(map(str, row["key"])), row["key"][0])] \
                        if renames else row["key"]
                got = listing(back, *a_args, names=a in PAIR_NAMED and b in PAIR_NAMED)
                assert got == (sorted(rows, key=lambda r: r["key"]), scalars), cell


def test_single_shard_directory_reads_back(tmp_path):
    """A sharded save that fits one shard is model.safetensors (model_state.pdparams) alone, as
    huggingface_hub writes it: the directory reads back as that format (it did not: 'expected
    at least one variable file')."""
    src = tmp_path / "s.pdparams"
    paddle.save(tree("state", "bfloat16"), str(src))
    for fmt, single in (("safetensors-sharded", "model.safetensors"),
                        ("pickle-sharded", "model_state.pdparams")):
        out = tmp_path / fmt
        run_cli("convert", src, out, "--to", fmt, "--no-fsync", check=0)
        assert sorted(p.name for p in out.iterdir()) == [single]
        got = ls_json(out, "--hash")
        assert got["format"] == fmt
        assert listing(out) == listing(src)


def test_python_saves_an_empty_paddle_tensor(tmp_path):
    """paddle.zeros([0, 3]) holds no allocation (_is_initialized() is False) and paddle.save takes
    it; pdckpt.save refused it as 'never set or initialised'.  Now the bytes are paddle.save's."""
    obj = {"e": paddle.zeros([0, 3], dtype="float32"), "w": tensor("float32", 1)}
    paddle.save(obj, str(tmp_path / "theirs.pdparams"))
    pdckpt.save(obj, tmp_path / "ours.pdparams", numpy_module="numpy._core"
                if int(np.__version__.split(".")[0]) >= 2 else "numpy.core")
    assert (tmp_path / "ours.pdparams").read_bytes() == (tmp_path / "theirs.pdparams").read_bytes()
    pdckpt.save({"e": obj["e"].astype("bfloat16")}, tmp_path / "e.safetensors")
    back = pdckpt.load(str(tmp_path / "e.safetensors"))["e"]
    assert back.shape == [0, 3] and back.dtype == paddle.bfloat16


@pytest.mark.parametrize("target", ["combined", "vars-dir", "tnum", "dygraph-dir"])
def test_skip_non_tensors_lists_what_it_dropped(tmp_path, target):
    """Issue 19 item 2: --skip-non-tensors (and skip_non_tensors=True) say what they dropped --
    each LR_Scheduler leaf by path, in the CLI and in Python alike -- and keep every tensor."""
    src = tmp_path / "opt.pdopt"
    paddle.save(tree("optimizer", "float32"), str(src))
    out = tmp_path / ("out" + {"combined": ".pdiparams", "tnum": ".tnum"}.get(target, ""))
    proc = run_cli("convert", src, out, "--to", target, "--skip-non-tensors", "--no-fsync",
                   check=0)
    assert "dropped int 'LR_Scheduler.last_epoch'" in proc.stderr, proc.stderr
    assert "dropped float 'LR_Scheduler.last_lr'" in proc.stderr, proc.stderr
    assert "non-tensor values dropped" in proc.stdout
    assert len(ls_json(out, *(("--names", "x,y") if target == "combined" else ()))[
        "tensors"]) == 2
    with pytest.warns(UserWarning, match=r"dropped 2 value\(s\): LR_Scheduler.last_epoch "
                                         r"\(int\), LR_Scheduler.last_lr \(float\)"):
        pdckpt.save(pdckpt.load(str(src)), tmp_path / ("py_" + out.name), format=target,
                    skip_non_tensors=True)


def test_dygraph_dir_says_keys_become_paddle_names(tmp_path):
    """A dygraph-dir names files by Paddle names (Paddle 1.5's save_persistables): converting a
    state dict into one renamed its structured keys without a word; CLI and Python now say
    which."""
    obj = tree("state", "float32")
    src = tmp_path / "s.pdparams"
    paddle.save(obj, str(src))
    proc = run_cli("convert", src, tmp_path / "d1", "--to", "dygraph-dir", "--no-fsync", check=0)
    for key, t in obj.items():
        assert f"'{key}' is stored as '{t.name}'" in proc.stderr, proc.stderr
    with pytest.warns(UserWarning, match="dygraph-dir keeps Paddle names, not keys: "
                                         f"'linear.weight' -> '{obj['linear.weight'].name}'"):
        pdckpt.save(obj, tmp_path / "d2", format="dygraph-dir")


@pytest.mark.parametrize("kind", TREES)
def test_python_writes_what_the_cli_writes(tmp_path, all_dtype_sources, kind):
    """One truth in CLI and Python: pdckpt.save(pdckpt.load(src), OUT, format=F) lists exactly
    as `pdckpt convert src OUT --to F` (dtypes, names, nesting, bytes), or both refuse, naming
    the same thing."""
    for fp8 in (False, True):
        src = all_dtype_sources[kind, fp8]
        tree_ = pdckpt.load(str(src))
        for fmt, name in PAIR_FORMATS.items():
            cli_out, py_out = tmp_path / f"{fp8}_cli_{name}", tmp_path / f"{fp8}_py_{name}"
            proc = convert(src, cli_out, fmt)
            refusal = pair_refusal(fmt, kind, fp8)
            extra = {"max_shard_size": int(WRITE_ARGS[fmt][1])} if fmt in WRITE_ARGS else {}
            if refusal:
                with pytest.raises(pdckpt.Error, match=refusal):
                    pdckpt.save(tree_, py_out, format=fmt, durable=False, **extra)
                assert not py_out.exists(), (kind, fp8, fmt)
                continue
            assert proc.returncode == 0, proc.stderr
            pdckpt.save(tree_, py_out, format=fmt, durable=False, **extra)
            args = _read_args(fmt, src)
            assert listing(py_out, *args) == listing(cli_out, *args), (kind, fp8, fmt)
