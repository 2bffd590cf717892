# SPDX-License-Identifier: Apache-2.0
"""What the s11 red-team pass found (each test failed before its fix).

The pickle writer re-emits the objects a load carried inert, and judged them less strictly than
the reader judges a pickle:

- numpy's scalar(dtype) without its bytes: a 375-byte pickle whose Python unpickling
  (paddle.load) allocates and zeroes the dtype's itemsize, 2 GB for 'V2000000000', per scalar.
  A plain pickle holding it loads in pdckpt as an inert object, and `pdckpt convert` wrote it
  back;
- a safetensors file's pdckpt.tree (its JSON rebuilds any object the tree names) can name calls
  the pickle reader never builds: a call (REDUCE) or NEWOBJ of numpy.ndarray, a global the
  reader takes only as another call's argument (numpy.ndarray((10**9,), dtype('O')) makes
  paddle.load fill 8 GB), builtins.dict / str / object called, copyreg._reconstructor with
  numpy.ndarray as its base (ndarray.__new__ takes the state as a shape);
- the same tree with CPython's Python 2 spelling (__builtin__.bytearray(10**11),
  copy_reg._reconstructor(list, list, xrange(2**40))): the writer renames it to Python 3 when it
  writes the global, but judged the call's arguments by the spelling, which no rule names.

The writer now judges every call by its Python 3 name and as the reader would accept it."""

import json
import pickle
import struct

import numpy as np
import pdckpt
import pytest
from conftest import run_cli


def _safetensors_with_tree(path, node):
    """A safetensors file of one tensor 'w' whose pdckpt.tree puts `node` under the key 'k'."""
    tree = {"v": 1, "root": {"d": [["k", node], ["w", {"t": "w"}]]}}
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "__metadata__": {"pdckpt.tree": json.dumps(tree)}}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)


def _g(module, name):
    return {"o": {"k": 2, "m": module, "n": name}}


def _call(module, name, *args, kind=0):
    return {"o": {"k": kind, "m": module, "n": name, "a": {"u": list(args)}}}


def _i(v):
    return {"i": str(v)}


_DTYPE_O = _call("numpy", "dtype", "O8", False, True)
_RANGE = _call("builtins", "range", _i(2**40))

TREE_CALLS = {
    "ndarray_reduce": _call("numpy", "ndarray", {"u": [_i(10**9)]}, _DTYPE_O),
    "ndarray_newobj": _call("numpy", "ndarray", {"u": [_i(10**9)]}, _DTYPE_O, kind=1),
    "dict_called": _call("builtins", "dict", _RANGE),
    "object_called": _call("builtins", "object"),
    "reconstructor_ndarray_base": _call("copyreg", "_reconstructor", _g("numpy", "ndarray"),
                                        _g("numpy", "ndarray"), {"u": [_i(10**9)]}),
    "py2_bytearray": _call("__builtin__", "bytearray", _i(10**11)),
    "py2_reconstructor": _call("copy_reg", "_reconstructor", _g("__builtin__", "list"),
                               _g("__builtin__", "list"),
                               _call("__builtin__", "xrange", _i(2**40))),
}


@pytest.mark.parametrize("case", sorted(TREE_CALLS))
def test_a_tree_cannot_make_the_writer_emit_a_call_the_reader_refuses(tmp_path, case):
    src = tmp_path / "t.safetensors"
    _safetensors_with_tree(src, TREE_CALLS[case])
    tree = pdckpt.load(src, return_numpy=True)  # inert in pdckpt: nothing called
    assert isinstance(tree["k"], pdckpt.OpaqueObject)
    for proto in ("2", "4"):
        out = tmp_path / f"out{proto}.pdparams"
        proc = run_cli("convert", src, out, "--protocol", proto, check=1)
        assert "refusing to write" in proc.stderr and str(out) in proc.stderr, proc.stderr
    with pytest.raises(pdckpt.UnsupportedError, match="refusing to write"):
        pdckpt.save(tree, tmp_path / "out.pdparams")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.safetensors"]


def _scalar_without_bytes_pickle():
    dtype = pickle.dumps(np.dtype("V2000000000"), protocol=2)[2:-1]  # without PROTO and STOP
    return (b"\x80\x02}q\x00X\x01\x00\x00\x00kq\x01cnumpy.core.multiarray\nscalar\nq\x02" + dtype
            + b"\x85Rs.")


def test_a_numpy_scalar_without_its_bytes_is_not_written(tmp_path):
    src = tmp_path / "s.pdparams"
    src.write_bytes(_scalar_without_bytes_pickle())
    tree = pdckpt.load(src, return_numpy=True)
    assert isinstance(tree["k"], pdckpt.OpaqueObject)
    out = tmp_path / "out.pdparams"
    proc = run_cli("convert", src, out, check=1)
    assert "numpy.core.multiarray.scalar" in proc.stderr and "without bound" in proc.stderr
    with pytest.raises(pdckpt.UnsupportedError, match="without bound"):
        pdckpt.save(tree, out)
    assert not out.exists()


def test_the_forms_cpython_and_numpy_write_still_round_trip(tmp_path):
    from collections import OrderedDict, defaultdict

    obj = {"v": np.void(b"ab"), "u": np.str_("\u00e9"), "f": np.float32(1.5),
           "d": defaultdict(int, {"a": 1}), "o": OrderedDict(a=1), "c": 1 + 2j}
    for proto in (2, 4):
        src = tmp_path / f"ok{proto}.pdparams"
        src.write_bytes(pickle.dumps(obj, protocol=proto))
        out = tmp_path / f"out{proto}.pdparams"
        run_cli("convert", src, out, "--protocol", proto, check=0)
        back = pickle.loads(out.read_bytes())
        assert back == obj and type(back["v"]) is np.void and back["d"].default_factory is int


def test_an_async_sharded_save_commits_where_it_was_started_after_a_chdir(tmp_path, monkeypatch):
    """save_state_dict(state, "ckpt", async_save=True), then a chdir before wait(): the data file
    (written by the worker thread) and the commit went to the new working directory's "ckpt",
    replacing the checkpoint of that id another run kept there; both now resolve the path when
    the save is called."""
    import paddle
    import pdckpt.distributed as pd

    mine, theirs = tmp_path / "exp1", tmp_path / "exp2"
    mine.mkdir(), theirs.mkdir()
    monkeypatch.chdir(theirs)
    assert pd.save_state_dict({"theirs": paddle.full([4], 7.0)}, "ckpt") == 0
    kept = {p.name: p.read_bytes() for p in (theirs / "ckpt").iterdir()}
    monkeypatch.chdir(mine)
    handle = pd.save_state_dict({"mine": paddle.ones([64, 64])}, "ckpt", async_save=True)
    monkeypatch.chdir(theirs)
    assert handle.wait() == 0
    assert {p.name: p.read_bytes() for p in (theirs / "ckpt").iterdir()} == kept
    target = {"mine": paddle.zeros([64, 64])}
    pd.load_state_dict(target, str(mine / "ckpt"))
    assert target["mine"].numpy().min() == 1.0


def _dead_pid():
    import subprocess
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_the_sweep_of_dead_saves_temporaries_leaves_another_users(tmp_path):
    """A save removes the temporaries dead saves of its file left (".m.pdparams.pdckpt-tmp-<dead
    pid>-*"), and a sharded save or gc those of the checkpoint's directory: by name and pid only,
    so root saving into a shared directory removed every other user's look-alike (a file, a whole
    directory).  Only the saver's own are debris now; its own are still swept."""
    import os
    root = os.geteuid() == 0  # another user's file needs chown (as the tests run here: root)
    ck = tmp_path / "ck"
    ck.mkdir()
    dead = _dead_pid()
    others = ck / f".m.pdparams.pdckpt-tmp-{dead}-0123456789abcdef"
    (others / "sub").mkdir(parents=True)
    (others / "sub" / "work").write_bytes(b"another user's")
    for p in (others / "sub" / "work", others / "sub", others):
        os.chown(p, 65534 if root else os.geteuid(), 65534 if root else os.getegid())
    ours = ck / f".m.pdparams.pdckpt-tmp-{dead}-fedcba9876543210"
    ours.write_bytes(b"debris")
    pdckpt.save({"w": np.arange(4, dtype=np.float32)}, ck / "m.pdparams")
    assert (others / "sub" / "work").exists() == root  # a look-alike of ours is debris
    assert not ours.exists()
    dist = tmp_path / "dist"
    dist.mkdir()
    planted = dist / f".0_0.distcp.pdckpt-tmp-{dead}-0123456789abcdef"
    planted.write_bytes(b"another user's")
    if root:
        os.chown(planted, 65534, 65534)
    run_cli("dist", "gc", dist, "--keep", "1", check=0)
    assert planted.exists() == root


# Protocol 0's text numbers as CPython's unpickler reads them: INT through strtol(text, base 0)
# (a leading zero is octal, two characters valued 0 or 1 a bool), FLOAT through
# PyOS_string_to_double (no hex, no "nan(...)", OverflowError past the largest double).
TEXT_NUMBERS = {"int_minus_zero": b"I-0", "int_plus_one": b"I+1", "int_plus_zero": b"I+0",
                "int_octal": b"I010", "int_minus_octal": b"I-010", "int_minus_one": b"I-1",
                "float_overflow": b"F1e999", "float_hex": b"F0x10", "float_nan_payload": b"Fnan(1)",
                "float_underflow": b"F1e-999", "float_infinity": b"F-infinity"}


@pytest.mark.parametrize("case", sorted(TEXT_NUMBERS))
def test_text_numbers_read_as_pickle_reads_them_or_refused(tmp_path, case):
    """pdckpt read 'I010' as 10 (paddle.load: 8), 'I-0' as 0 (False), and 'F1e999' / 'F0x10' as
    inf / 16.0 where Python's unpickler raises: a converted file then held what paddle.load of
    the original never gives.  Now the same value and type, or a FormatError at the opcode."""
    data = b"(dp0\nS'k'\np1\n" + TEXT_NUMBERS[case] + b"\ns."
    src = tmp_path / "t.pdparams"
    src.write_bytes(data)
    try:
        want = pickle.loads(data)["k"]
    except (ValueError, OverflowError):
        with pytest.raises(pdckpt.FormatError, match="offset 13"):
            pdckpt.load(src, return_numpy=True)
        return
    try:
        got = pdckpt.load(src, return_numpy=True)["k"]
    except pdckpt.FormatError as e:
        assert "offset 13" in str(e) and "leading zero" in str(e)
        return
    assert type(got) is type(want) and got == want


ADDERS = {"additems_on_a_list": b"\x80\x04]\x94(K\x01\x90.",
          "append_on_a_set": b"\x80\x04\x8fK\x01a.",
          "appends_on_a_set": b"\x80\x04\x8f(K\x01e."}


@pytest.mark.parametrize("case", sorted(ADDERS))
def test_items_added_as_python_cannot_add_them_are_refused(tmp_path, case):
    """ADDITEMS on a list (Python's unpickler calls list.add: AttributeError) loaded as [1], and
    `convert` wrote a file paddle.load reads, of a pickle paddle.load cannot read."""
    with pytest.raises(AttributeError):
        pickle.loads(ADDERS[case])
    src = tmp_path / "a.pdparams"
    src.write_bytes(ADDERS[case])
    with pytest.raises(pdckpt.FormatError, match="Python's unpickler calls"):
        pdckpt.load(src, return_numpy=True)
    run_cli("convert", src, tmp_path / "out.pdparams", check=1)


def test_an_error_from_a_file_object_names_its_file(tmp_path):
    """pdckpt.load(open(p, "rb")) of a hostile or truncated file said "<memory>: offset 11: ...":
    the bytes are read into memory first, and the error named that.  It names p now (a BytesIO,
    which has no name, keeps "<memory>")."""
    import io
    p = tmp_path / "m.pdparams"
    p.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00kK")  # truncated in its last opcode
    for opener in (pdckpt.load, pdckpt.open):
        with open(p, "rb") as f, pytest.raises(pdckpt.FormatError) as info:
            opener(f)
        assert info.value.source == str(p) and info.value.offset == 11
        assert str(info.value).startswith(f"{p}: offset 11: BININT1: expected 1 bytes")
    with pytest.raises(pdckpt.FormatError, match="^<memory>: offset 11"):
        pdckpt.load(io.BytesIO(p.read_bytes()))


def test_a_file_object_over_a_proc_file_is_refused_unread(tmp_path):
    """A path to a file of /proc or /sys is refused unread (its size is not its length); a file
    object over one was read to its end: /proc/self/environ gave a FormatError naming "<memory>",
    and /proc/kmsg (root) waits for the kernel's next message, forever."""
    with open("/proc/self/environ", "rb") as f, pytest.raises(pdckpt.ArgumentError,
                                                              match="/proc or /sys") as info:
        pdckpt.load(f)
    assert info.value.source == "/proc/self/environ"
