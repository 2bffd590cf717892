# SPDX-License-Identifier: Apache-2.0
"""Loads of hand-made files found by the s10 red-team pass (each failed before its fix).

- one ndarray a pickle names in several places (a memo reference; Paddle never writes one) in a
  dict without Paddle's name table: pdckpt.load made ONE paddle.Tensor object and put it in
  every place, so an in-place op through one key (an optimizer step, `add_`) changed the others;
  paddle.load makes a tensor per place.  Shared containers stay shared, as paddle.load leaves
  them; return_numpy keeps the one array, as pickle and paddle.load(return_numpy=True) do;
- a program whose variable name holds a NUL byte ("fc_0\\0w_0" in a real __model__): protobuf-c
  hands C a string that ends at the NUL, so pdckpt listed and loaded the variable as "fc_0" --
  a name the program does not have -- from the file "fc_0".  Now FORMAT at the name's offset
  (the sharded metadata's names were refused alike in s7);
- a file object or standard input over a character device (`pdckpt.load(open(p, "rb"))` where
  p links to /dev/zero; `pdckpt ls - < /dev/zero`): read until memory ran out (a path to one is
  refused unread).  Now refused before the first read, naming it;
- the same array in 200,000 places (a 400 KB pickle) made a paddle.Tensor per place, each at
  least 4 KiB of Paddle's memory: 1.1 GB, as paddle.load makes it.  Tensors made again for a
  payload are now held to 64 MiB + 4 x the payloads made once (LimitError naming the file);
  return_numpy keeps the one array and loads it;
- sharded metadata naming a data file "../e.distcp": refused, but the message did not say which
  name ("expected plain file names inside the checkpoint directory"); now it quotes it;
- a sharded checkpoint's index sidecar "<id>.pdkidx" is bound to its metadata by a hash of the
  metadata's bytes, which anyone who can read them can compute: another user who may create
  files in the directory (a shared scratch directory) planted one pointing a key at a data file
  of their own, and the load returned their values.  The sidecar is now used only when whoever
  may write it may write the metadata (the rule the pickle's index follows since s9); else the
  metadata is decoded."""

import os
import pickle
import resource
import shutil
import subprocess
import sys
import warnings

import numpy as np
import paddle
import pdckpt
import pytest
from conftest import FIXTURES, PDCKPT_BIN, PY_STAGE, run_cli

warnings.filterwarnings("ignore")


TABLE = "StructuredToParameterName@@"


def _shared_layouts():
    a = np.arange(4, dtype=np.float32)
    box, named = [a], {"w": a}
    return {"keys": {f"k{i}": a for i in range(20)},  # 20: the batch's groups too
            "list": {"x": [a, a]},
            "nested": {"x": {"p": a}, "y": [a], "z": (a,)},
            "shared-list": {"x": box, "y": box},
            "shared-dict": {"x": named, "y": named},
            # paddle.save's state-dict layout: the name table names each key's tensor
            "table": {"w": a, "b": a, "l": [a], TABLE: {"w": "lin.w_0", "b": "lin.b_0"}},
            "table-keys": {**{f"k{i}": a for i in range(20)},
                           TABLE: {f"k{i}": f"p_{i}" for i in range(20)}}}


def _leaves(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}/{i}")
    elif isinstance(obj, (paddle.Tensor, np.ndarray)):
        yield path, obj


def _identities(obj):
    """Which leaves are one object: each leaf's first index among the leaves."""
    leaves = list(_leaves(obj))
    return [[i for i, (_, y) in enumerate(leaves) if y is x][0] for _, x in leaves]


def _after_first_add(obj):
    """Every leaf's first element after an in-place add to the first leaf, and which leaves are
    one object."""
    leaves = list(_leaves(obj))
    same = _identities(obj)
    first = leaves[0][1]
    if isinstance(first, np.ndarray):
        first += 1
    else:
        first.add_(paddle.ones_like(first))
    return [(p, type(x).__name__, float(x[0])) for p, x in leaves], same


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("layout", sorted(_shared_layouts()))
def test_one_array_in_many_places_loads_as_paddle_load_gives_it(tmp_path, layout, protocol):
    # (s11: with the name table and return_numpy, pdckpt gave an array per key, paddle.load one)
    path = tmp_path / "shared.pdparams"
    path.write_bytes(pickle.dumps(_shared_layouts()[layout], protocol=protocol))
    for kw in ({}, {"return_numpy": True}, {"return_numpy": True, "keep_name_table": True}):
        want = _after_first_add(paddle.load(str(path), **kw))
        for mm in (False, True):
            got = pdckpt.load(path, mmap=mm, **kw)
            first = next(_leaves(got))[1]
            if isinstance(first, np.ndarray) and not first.flags.writeable:  # a mapping's views
                assert mm and _identities(got) == want[1], kw
                continue
            assert _after_first_add(got) == want, (kw, mm)


def test_a_variable_name_with_a_nul_in_a_program_is_refused(tmp_path):
    d = tmp_path / "fal"
    shutil.copytree(FIXTURES / "fit_a_line-sepfiles-2019-05", d)
    model = (d / "__model__").read_bytes()
    at = model.index(b"fc_0.w_0")
    (d / "__model__").write_bytes(model.replace(b"fc_0.w_0", b"fc_0\0w_0"))
    shutil.copy(d / "fc_0.w_0", d / "fc_0")  # the file a C string of the name would open
    proc = run_cli("ls", d / "__model__", check=1)
    assert f"offset {at}: VarDesc.name" in proc.stderr, proc.stderr
    assert "without a NUL byte" in proc.stderr
    # the directory: its program's error (as paddle.load fails on it); the variable files alone,
    # asked for, by their own names
    with pytest.raises(pdckpt.FormatError, match=f"offset {at}: VarDesc.name"):
        pdckpt.load(d, return_numpy=True)
    got = pdckpt.load(d, return_numpy=True, format="vars-dir")
    assert sorted(got) == ["fc_0", "fc_0.b_0", "fc_0.w_0"]


def _small_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the old code ran out here


def test_a_device_behind_a_file_object_or_stdin_is_refused_unread(tmp_path):
    link = tmp_path / "model.pdparams"
    link.symlink_to("/dev/zero")
    code = ("import pdckpt, sys\n"
            "try:\n    pdckpt.load(open(sys.argv[1], 'rb'))\n"
            "except pdckpt.ArgumentError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True,
                          text=True, timeout=120, preexec_fn=_small_address_space,
                          env={**os.environ, "PYTHONPATH": str(PY_STAGE)})
    assert f"{link}: expected a regular file, a pipe or a socket, found a character device" \
        in proc.stdout, (proc.stdout, proc.stderr[-2000:])
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([str(PDCKPT_BIN), "ls", "-"], stdin=zero, capture_output=True,
                              text=True, timeout=120, preexec_fn=_small_address_space)
    assert proc.returncode == 1 and "<stdin>: expected a regular file, a pipe or a socket" \
        in proc.stderr, proc.stderr


def test_one_small_array_in_many_places_is_held_to_a_budget(tmp_path):
    a = np.zeros(1, np.float32)
    path = tmp_path / "fan.pdparams"
    path.write_bytes(pickle.dumps({"x": [a] * 20000}, protocol=4))  # 80 MB of 4 KiB tensors
    for mm in (False, True):
        with pytest.raises(pdckpt.LimitError, match="tensors made again") as info:
            pdckpt.load(path, mmap=mm)
        assert info.value.source == str(path)
    assert len(pdckpt.load(path, return_numpy=True)["x"]) == 20000


def test_a_data_file_name_outside_the_checkpoint_is_quoted(tmp_path, paddle_np):
    from paddle.distributed.flex_checkpoint.dcp.metadata import (
        LocalTensorIndex, LocalTensorMetadata, Metadata)
    from test_hostile_distcp import _checkpoint, _load_error
    paddle, np_ = paddle_np
    ck = _checkpoint(paddle, np_, tmp_path / "ck", (0,), (4,), (4,), None,
                     np_.arange(4, dtype="float32"))
    sdm = {"w": [LocalTensorMetadata((0,), (4,), "float32", (4,), False, None)]}
    storage = {LocalTensorIndex("w", (0,), False, None, None, (4,)): "../e.distcp"}
    paddle.save(Metadata(sdm, storage, {}), str(ck / "0.metadata"))
    msg = _load_error(ck)
    assert "0.metadata" in msg and "plain file names" in msg and "'../e.distcp'" in msg, msg


def test_a_sharded_index_others_may_write_is_not_trusted(tmp_path):
    from test_dist import mpirun
    dirs = {}
    for tag, fill in (("a", 1.0), ("b", 7.0)):
        src = tmp_path / f"{tag}.safetensors"
        pdckpt.save({"w": np.full((4, 3), fill, np.float32)}, str(src))
        dirs[tag] = tmp_path / tag
        mpirun(1, "dist", "shard", src, dirs[tag], "--ranks-layout", "row")
    ck = dirs["a"]
    side = next(ck.glob("*.pdkidx"))
    data = next(ck.glob("*.distcp")).name
    planted = "9" + data[1:]
    shutil.copy(next(dirs["b"].glob("*.distcp")), ck / planted)  # the planter's own values
    side.write_bytes(side.read_bytes().replace(data.encode(), planted.encode()))
    os.chmod(side, 0o666)  # anyone may write it: it is not the checkpoint writer's word
    np.testing.assert_array_equal(pdckpt.load(str(ck), return_numpy=True)["w"], 1.0)
    if os.geteuid() == 0:  # another user's file, not writable by others
        os.chmod(side, 0o644)
        os.chown(side, 65534, 65534)
        np.testing.assert_array_equal(pdckpt.load(str(ck), return_numpy=True)["w"], 1.0)


def test_an_endless_stream_is_read_up_to_a_bound(tmp_path):
    """A stream that cannot seek (a pipe, a socket) is read whole -- its size is not known
    before it ends -- so an endless producer made pdckpt.load allocate without bound (and the
    CLI's `ls -` up to 64 GiB).  It now stops at max_stream_bytes (default: physical memory or
    64 GiB, the less) with a LimitError naming the stream and the bytes read; a stream within
    the bound loads as before."""
    import threading
    r, w = os.pipe()

    def produce():
        try:
            while True:
                os.write(w, b"\0" * 65536)
        except OSError:
            pass  # the reader closed
        finally:
            os.close(w)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    with open(r, "rb") as stream, pytest.raises(pdckpt.LimitError) as e:
        pdckpt.load(stream, max_stream_bytes=4 << 20)
    t.join(10)
    assert "<stream fd" in str(e.value) and str(4 << 20) in str(e.value), e.value
    assert f"read {(4 << 20) + 1} " in str(e.value), e.value
    ok = tmp_path / "ok.pdparams"
    pdckpt.save({"w": np.arange(3, dtype=np.float32)}, ok)
    proc = subprocess.run([sys.executable, "-c", "import sys, pdckpt; print(pdckpt.load("
                           "sys.stdin.buffer, return_numpy=True)['w'].tolist())"],
                          input=ok.read_bytes(), capture_output=True,
                          timeout=60)
    assert proc.stdout.strip() == b"[0.0, 1.0, 2.0]", proc.stderr


def test_an_endless_standard_input_stops_with_the_bytes_read():
    """`pdckpt ls -` fed by `yes` under a 1 GiB address space: the error names standard input and
    how many bytes were read (it said "at most 64 GiB ... (or memory ran out)", no count)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run([str(PDCKPT_BIN), "ls", "-"], stdin=yes.stdout, capture_output=True,
                              text=True, timeout=120, preexec_fn=limit)
    finally:
        yes.kill()
        yes.wait()
        yes.stdout.close()
    assert proc.returncode != 0
    assert "<stdin>" in proc.stderr and "memory ran out after" in proc.stderr, proc.stderr
    read = int(proc.stderr.split("memory ran out after ")[1].split()[0])
    assert (64 << 20) < read < (1 << 30), proc.stderr


def test_a_directory_whose_program_does_not_parse_is_not_a_vars_dir_silently(tmp_path):
    """The real fit_a_line directory (__model__ + a file per variable) with its __model__ broken
    at byte 5 loaded, listed and verified OK as a vars-dir of its files: the broken program was
    never reported.  paddle.load fails on such a directory (it parses __model__ first), so
    pdckpt now reports the program's error at its offset, with how to read the variable files
    alone (format="vars-dir", as fluid.io.load_persistables, which never reads __model__)."""
    d = tmp_path / "fal"
    shutil.copytree(FIXTURES / "fit_a_line-sepfiles-2019-05", d)
    model = bytearray((d / "__model__").read_bytes())
    model[5:40] = b"\xff" * 35
    (d / "__model__").write_bytes(bytes(model))
    with pytest.raises(Exception):
        paddle.load(str(d))  # Paddle: "Failed to parse program_desc"
    for cmd in ("ls", "verify"):
        proc = run_cli(cmd, d, check=1)
        assert "__model__: offset 5:" in proc.stderr and "--format vars-dir" in proc.stderr, \
            proc.stderr
    with pytest.raises(pdckpt.FormatError, match=r"__model__: offset 5: .*format=\"vars-dir\""):
        pdckpt.load(d, return_numpy=True)
    got = pdckpt.load(d, return_numpy=True, format="vars-dir")
    assert sorted(got) == ["fc_0.b_0", "fc_0.w_0"]
    run_cli("verify", "--format", "vars-dir", d, check=0)
