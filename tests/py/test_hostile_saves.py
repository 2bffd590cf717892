# SPDX-License-Identifier: Apache-2.0
"""Saves under hostile conditions found by the s10 red-team pass (each failed before its fix).

- a file-size limit (RLIMIT_FSIZE, `ulimit -f`): the kernel sends SIGXFSZ to a write past it,
  whose default action kills the process.  The CLI died of the signal mid-save (exit 153), said
  nothing, and left its partial temporary beside the target.  It now ignores SIGXFSZ (as CPython
  does), so the write fails with EFBIG: an IO error naming the file, the temporary removed, the
  old file kept byte for byte;
- a dict key with a NUL byte inside (a hand-made pickle's "w\\0.evil"): every flat format
  (safetensors, combined, tnum, vars-dir, dygraph-dir) names its tensors by C strings, so
  `pdckpt convert` wrote the tensor as "w" -- a name the source never had -- and a dygraph-dir
  save of {"a\\0b", "a\\0c", "a"} kept one of the three, silently.  Such a key is now refused
  (ARGUMENT) before anything is written; a pickle keeps it, as pickle does;
- a save over an existing file copied its mode with the set-user-ID and set-group-ID bits: over
  another user's 04755 file, a user who may not give the new file away got a set-user-ID
  program of their own.  The permission bits are kept, those are not;
- calls on the allowlist re-emitted with arguments CPython and numpy never write: a hand-made
  pickle's bytes(2**40), bytearray(2**40), list / set / tuple / bytes(range(2**40)), the same
  as copyreg._reconstructor(list, list, range(2**40))'s base.__init__, or numpy's
  _reconstruct(ndarray, (2**34,), b'b') without its data load in pdckpt as inert OpaqueObjects,
  but `pdckpt convert` wrote them back, and Python's unpickler (paddle.load) of the converted
  file then allocates a TiB or iterates 2**40 values.  The writer now refuses such a call
  (UNSUPPORTED, naming it) before the output exists;
- a structured numpy dtype re-emitted the same way: numpy's unpickler takes a field's offset from
  the state unchecked, so a record array whose field lies at offset 100 of an 8-byte item reads
  out of bounds on every access to the field.  The writer emits plain dtypes only (pdckpt.save
  already refused record arrays)."""

import pickle
import os
import resource
import stat
import subprocess

import numpy as np
import pdckpt
import pytest
from conftest import PDCKPT_BIN, run_cli


def _limit_file_size(nbytes):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return preexec


def test_a_file_size_limit_is_an_error_naming_the_file_not_a_kill(tmp_path):
    src = tmp_path / "a.pdparams"
    pdckpt.save({"w": np.ones((1000, 100), np.float32)}, src)
    old = tmp_path / "old.pdparams"
    old.write_bytes(src.read_bytes()[:5000])  # a smaller checkpoint the save must not damage
    before = old.read_bytes()
    for out, to in ((tmp_path / "new.safetensors", "safetensors"), (old, "pickle")):
        # restore_signals (the default) gives the child SIGXFSZ's default action, as a shell does
        proc = subprocess.run([str(PDCKPT_BIN), "convert", str(src), str(out), "--to", to],
                              capture_output=True, text=True, timeout=60,
                              preexec_fn=_limit_file_size(64 * 1024))
        assert proc.returncode == 1, (proc.returncode, proc.stderr)
        assert str(out) in proc.stderr and "File too large" in proc.stderr, proc.stderr
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdparams", "a.pdparams.pdkidx",
                                                          "old.pdparams"]


@pytest.mark.parametrize("to", ["safetensors", "combined", "tnum", "vars-dir", "dygraph-dir"])
def test_a_key_with_a_nul_is_refused_by_flat_formats_not_shortened(tmp_path, to):
    src = tmp_path / "nul.pdparams"
    src.write_bytes(pickle.dumps({"w\0.evil": np.ones(2, np.float32)}, protocol=2))
    out = tmp_path / "out"
    proc = run_cli("convert", src, out, "--to", to, check=1)
    assert "without a NUL byte" in proc.stderr and "'w'" in proc.stderr, proc.stderr
    assert not out.exists()
    keys = {"a\0b": np.ones(2, np.float32), "a\0c": np.full(2, 2, np.float32),
            "a": np.zeros(2, np.float32)}
    with pytest.raises(pdckpt.ArgumentError, match="NUL byte"):
        pdckpt.save(keys, tmp_path / "py_out", format=to)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nul.pdparams"]
    back = pdckpt.load(src, return_numpy=True)  # the pickle itself keeps the key
    assert list(back) == ["w\0.evil"]
    if to == "safetensors":  # the tree's JSON keeps a non-tensor's key; a tensor's name is cut
        with pytest.raises(pdckpt.ArgumentError, match="'a' followed by one"):
            pdckpt.save({"a\0b": {"w": np.ones(2, np.float32)}}, tmp_path / "n.safetensors")
        pdckpt.save({"a\0b": 5, "x": np.ones(1, np.float32)}, tmp_path / "k.safetensors")
        assert pdckpt.load(tmp_path / "k.safetensors", return_numpy=True)["a\0b"] == 5


def test_a_save_keeps_the_permissions_not_the_set_id_bits(tmp_path):
    src = tmp_path / "a.pdparams"
    pdckpt.save({"w": np.ones(3, np.float32)}, src)
    for mode in (0o4755, 0o2750, 0o1644, 0o6711):
        target = tmp_path / "t.safetensors"
        target.write_bytes(b"old")
        os.chmod(target, mode)
        run_cli("convert", src, target, check=0)
        assert stat.S_IMODE(os.stat(target).st_mode) == mode & 0o777, oct(mode)
        target.unlink()
        target.write_bytes(b"old")
        os.chmod(target, mode)
        pdckpt.save({"w": np.ones(3, np.float32)}, target, format="safetensors")
        assert stat.S_IMODE(os.stat(target).st_mode) == mode & 0o777, oct(mode)
        target.unlink()


def _g(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _long(n):
    b = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def _call(fn, *args):
    return fn + b"(" + b"".join(args) + b"tR"


_RANGE = _call(_g("__builtin__", "xrange"), _long(2**40))
UNBOUNDED = {
    "bytes(int)": _call(_g("__builtin__", "bytes"), _long(2**40)),
    "bytearray(int)": _call(_g("__builtin__", "bytearray"), _long(2**40)),
    "list(range)": _call(_g("__builtin__", "list"), _RANGE),
    "set(range)": _call(_g("__builtin__", "set"), _RANGE),
    "tuple(range)": _call(_g("__builtin__", "tuple"), _RANGE),
    "bytes(range)": _call(_g("__builtin__", "bytes"), _RANGE),
    "_reconstructor(list, list, range)": _call(_g("copy_reg", "_reconstructor"),
                                               _g("__builtin__", "list"),
                                               _g("__builtin__", "list"), _RANGE),
    "_reconstructor(bytearray, bytearray, int)": _call(_g("copy_reg", "_reconstructor"),
                                                       _g("__builtin__", "bytearray"),
                                                       _g("__builtin__", "bytearray"),
                                                       _long(2**40)),
    "_reconstruct(shape 2^34)": _call(_g("numpy.core.multiarray", "_reconstruct"),
                                      _g("numpy", "ndarray"), b"(" + _long(2**34) + b"t",
                                      b"C\x01b"),
}


def _pickle_of(body):
    return b"\x80\x02}q\x00X\x01\x00\x00\x00xq\x01" + body + b"s."


@pytest.mark.parametrize("case", sorted(UNBOUNDED))
def test_a_call_python_would_build_without_bound_is_not_written(tmp_path, case):
    src = tmp_path / "h.pdparams"
    src.write_bytes(_pickle_of(UNBOUNDED[case]))
    tree = pdckpt.load(src)  # inert in pdckpt: nothing called
    assert isinstance(tree["x"], pdckpt.OpaqueObject)
    out = tmp_path / "out.pdparams"
    proc = run_cli("convert", src, out, check=1)
    assert "refusing to write the call" in proc.stderr and str(out) in proc.stderr, proc.stderr
    with pytest.raises(pdckpt.UnsupportedError, match="without bound"):
        pdckpt.save(tree, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.pdparams"]


def test_the_bounded_forms_of_those_calls_still_round_trip(tmp_path):
    obj = {"ba": bytearray(b"abc"), "s": {1, 2}, "f": frozenset({3}), "r": range(2**40),
           "t": ("name", 1), "b": b"", "sl": slice(2**40)}
    for proto in (2, 3):
        src = tmp_path / f"ok{proto}.pdparams"
        src.write_bytes(pickle.dumps(obj, protocol=proto))
        out = tmp_path / f"out{proto}.pdparams"
        run_cli("convert", src, out, "--protocol", proto, check=0)
        assert pickle.loads(out.read_bytes()) == obj


def test_a_structured_dtype_is_not_written_back(tmp_path):
    arr = np.zeros(2, dtype=[("a", "<f8")])
    data = pickle.dumps({"x": arr}, protocol=2)
    src = tmp_path / "rec.pdparams"
    src.write_bytes(data.replace(b"K\x00\x86", b"Kd\x86", 1))  # the field's offset: 0 -> 100
    assert pickle.loads(src.read_bytes())["x"].dtype.fields["a"][1] == 100  # numpy took it
    out = tmp_path / "out.pdparams"
    proc = run_cli("convert", src, out, check=1)
    assert "structured or subarray dtype" in proc.stderr, proc.stderr
    assert not out.exists()


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_a_directory_swapped_for_a_link_mid_sweep_does_not_lead_the_sweep_out(tmp_path):
    """A dead writer's temporary directory, planted with ten subdirectories; at the sweep's first
    removal (tests/crash/swap_on_unlink.c) the temporary is swapped for a link to a directory
    of the same shape outside.  nftw holds its directories open, but its callback removed each
    entry by its full path, through the link: every outside file and directory went.  The walk
    by descriptors empties the directory it opened and nothing else."""
    from conftest import BUILD
    shim = BUILD / "tests" / "libpdckpt_swap_on_unlink.so"
    assert shim.exists(), f"build first: {shim}"
    ck, outside = tmp_path / "ck", tmp_path / "outside"
    ck.mkdir()
    src = tmp_path / "src.pkl"
    pdckpt.save({"w": np.arange(4, dtype=np.float32)}, src)
    temp = ck / f".m.pdparams.pdckpt-tmp-{_dead_pid()}-0123456789abcdef"
    for i in range(10):
        (temp / f"d{i}").mkdir(parents=True)
        (temp / f"d{i}" / "trigger").write_bytes(b"debris")
        (outside / f"d{i}").mkdir(parents=True)
        (outside / f"d{i}" / "trigger").write_bytes(b"someone else's")
    env = dict(os.environ, LD_PRELOAD=str(shim), PDCKPT_SWAP_FROM=str(temp),
               PDCKPT_SWAP_LINK=str(outside))
    proc = subprocess.run([str(PDCKPT_BIN), "convert", str(src), str(ck / "m.pdparams")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert os.path.islink(temp)  # the swap happened
    victims = sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*"))
    assert victims == sorted([f"d{i}" for i in range(10)] + [f"d{i}/trigger" for i in range(10)])
    assert list(ck.glob(".m.pdparams.pdckpt-tmp-*.real/*")) == []  # what it opened is emptied


def test_a_name_of_255_bytes_saves_and_its_killed_saves_temporary_is_swept(tmp_path):
    """The temporary ".<name>.pdckpt-tmp-<pid>-<hex>" is 37+ bytes longer than the name, so a
    name within that of NAME_MAX could not be saved ("create temporary file: File name too
    long").  Such a name's temporaries carry a stem of its first bytes and a hash of the whole:
    the save works, a killed save's temporary is swept by the next, and a look-alike temporary
    of another long name (same first bytes) and the other files stay."""
    from test_crash_consistency import SAVER
    from test_crash_shim import SHIM
    name = "m" * 246 + ".pdparams"
    assert len(name) == 255
    target = tmp_path / name
    pdckpt.save({"w": np.arange(3, dtype=np.float32)}, target)
    assert pdckpt.load(target, return_numpy=True)["w"].tolist() == [0, 1, 2]
    env = dict(os.environ, LD_PRELOAD=str(SHIM), PDCKPT_SHIM_DIR=str(tmp_path / "shadow"),
               PDCKPT_CRASH_AT="1")
    (tmp_path / "shadow").mkdir()
    proc = subprocess.run([str(SAVER), "pdparams", str(target), "B"], env=env,
                          capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr  # killed mid-save by the shim
    debris = [n for n in os.listdir(tmp_path) if ".pdckpt-tmp-" in n]
    assert len(debris) == 1 and len(debris[0]) <= 255, debris
    other_long = "m" * 246 + ".pdopt"  # the same first bytes, another name
    pdckpt.save({"x": np.zeros(1, np.float32)}, tmp_path / other_long)
    pid = debris[0].split(".pdckpt-tmp-")[1].split("-")[0]
    lookalike = ".{}.pdckpt-tmp-{}-0123456789abcdef".format(
        debris[0][1:].split(".pdckpt-tmp-")[0][:-16] + "0" * 16, pid)
    (tmp_path / lookalike).write_bytes(b"not ours")
    before = sorted(os.listdir(tmp_path))
    pdckpt.save({"w": np.ones(2, np.float32)}, target)
    after = sorted(os.listdir(tmp_path))
    assert after == sorted(set(before) - {debris[0]}), (before, after)
    assert pdckpt.load(target, return_numpy=True)["w"].tolist() == [1, 1]


def test_a_key_with_a_nul_is_refused_where_safetensors_keeps_the_tree(tmp_path):
    """The tree kept in safetensors metadata (nesting, non-tensor leaves, a pickle's plain root)
    named its tensors by the path cut at the NUL ("a.w\\0x" stored as "a.w"): refused as the flat
    path refuses it."""
    tree = {"a": {"w\0x": np.ones(2, np.float32)}, "n": 1}
    with pytest.raises(pdckpt.ArgumentError, match="without a NUL byte.*'a.w'"):
        pdckpt.save(tree, tmp_path / "t.safetensors")
    src = tmp_path / "plain.pkl"  # a pickle's root without a name table: the tree path
    src.write_bytes(pickle.dumps({"w\0x": np.ones(2, np.float32), "v": np.zeros(2)}, protocol=4))
    proc = run_cli("convert", src, tmp_path / "out.safetensors", check=1)
    assert "without a NUL byte" in proc.stderr and "'w'" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pkl"]
