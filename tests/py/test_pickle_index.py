# SPDX-License-Identifier: Apache-2.0
"""The lazy-open index "<file>.pdkidx" (src/formats/pickle/pickle_index.c, docs/pickles.md): pdckpt
writes it beside a pickle it saved (a state dict of tensors of any size, or any tree of large
tensors), a zero-copy open (pdckpt.open) makes the entries from it on access, and no stale, rewritten,
garbled, truncated, old-version or lying index ever changes what is returned: a stale, damaged or
old one is ignored and the pickle parsed; an entry of a lying one (its hash made to match, as only
a forger does) is refused with CorruptError when it is made, as is a tensor whose payload the
pickle no longer holds where the index says.  Speed is the benchmark's business (bench_c
lazyopen, bench/bench.py)."""
import ctypes
import ctypes.util
import os
import pickle
import struct

import numpy as np
import pytest

import pdckpt
from pdckpt._native import NAME_TABLE_KEY

HEADER = 8 + 9 * 8  # magic, stamp (7 x u64), body length, body hash


def state(seed=0, n=6):
    rng = np.random.default_rng(seed)
    d = {f"layer{i}.weight": rng.standard_normal((128, 160), dtype=np.float32) for i in range(n)}
    d["layer0.bias"] = np.arange(40000, dtype=np.int64)
    return d


def tree(path):
    """What a zero-copy open gives, as plain Python values (arrays copied out)."""
    r = pdckpt.open(path)
    return {k: np.array(r[k]) for k in r.keys() if k != NAME_TABLE_KEY}


def parsed(path, **kw):
    return {k: v for k, v in pdckpt.load(path, return_numpy=True, **kw).items()
            if k != NAME_TABLE_KEY}


def assert_same(got, want):
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k


@pytest.fixture
def saved(tmp_path):
    p = str(tmp_path / "model.pdparams")
    src = state()
    pdckpt.save(src, p)
    assert os.path.exists(p + ".pdkidx")
    return p, src


def xxh3(data):
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_64bits(data, len(data))


def rehash(idx):
    """An index whose body was edited, with its length and hash made to match again."""
    body = idx[HEADER:]
    return idx[:HEADER - 16] + struct.pack("<QQ", len(body), xxh3(body)) + body


def test_index_gives_what_parsing_gives(saved):
    p, src = saved
    r = pdckpt.open(p)
    keys, names = list(r.keys()), r[NAME_TABLE_KEY]
    assert_same(tree(p), src)
    assert_same(parsed(p), src)
    os.remove(p + ".pdkidx")
    r = pdckpt.open(p)
    assert list(r.keys()) == keys and r[NAME_TABLE_KEY] == names
    assert_same(tree(p), src)


def test_small_tensors_outside_a_state_dict_get_no_index_and_a_save_removes_its_old_one(tmp_path):
    """Small tensors are indexed from the save itself only on the state-dict path; elsewhere the
    index would cost a parse per save and is not written -- and an old one is removed."""
    p = str(tmp_path / "small.pdparams")
    pdckpt.save(state(), p)
    assert os.path.exists(p + ".pdkidx")
    small = {"opt": {f"w{i}": np.ones(4, np.float32) for i in range(10)}, "step": 3}
    pdckpt.save(small, p)
    assert not os.path.exists(p + ".pdkidx")
    r = pdckpt.open(p)
    assert r["step"] == 3 and list(r["opt"]) == list(small["opt"])
    open(p + ".pdkidx", "wb").write(b"not ours")  # a file pdckpt did not write stays
    pdckpt.save(small, p)
    assert open(p + ".pdkidx", "rb").read() == b"not ours"
    assert pdckpt.open(p)["step"] == 3


def test_pickle_replaced_by_paddle_save_makes_the_index_stale(saved):
    p, _ = saved
    other = state(seed=1)
    with open(p, "wb") as f:  # in place, as paddle.save does
        pickle.dump(other, f, protocol=4)
    assert_same(tree(p), other)


def test_same_size_same_mtime_rewrite_makes_the_index_stale(saved):
    p, src = saved
    st = os.stat(p)
    data = bytearray(open(p, "rb").read())
    raw = src["layer3.weight"].tobytes()
    at = data.find(raw)
    data[at:at + len(raw)] = (src["layer3.weight"] * 2).tobytes()
    with open(p, "r+b") as f:
        f.write(data)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: ctime cannot be
    got = tree(p)
    assert np.array_equal(got["layer3.weight"], src["layer3.weight"] * 2)


@pytest.mark.parametrize("cut", [0, 7, HEADER - 1, HEADER, HEADER + 5, -1])
def test_truncated_index_is_ignored(saved, cut):
    p, src = saved
    idx = open(p + ".pdkidx", "rb").read()
    open(p + ".pdkidx", "wb").write(idx[:cut] if cut >= 0 else idx[:-1])
    assert_same(tree(p), src)


def test_garbled_index_is_ignored(saved):
    p, src = saved
    idx = bytearray(open(p + ".pdkidx", "rb").read())
    for i in range(HEADER, len(idx), 97):
        idx[i] ^= 0x5A
    open(p + ".pdkidx", "wb").write(idx)
    assert_same(tree(p), src)


def varint(v, width):
    """LEB128 as the index writes it, padded to `width` bytes (a reader takes padded forms)."""
    out = []
    for i in range(width):
        out.append((v & 0x7F) | (0x80 if i < width - 1 else 0))
        v >>= 7
    assert v == 0
    return bytes(out)


def test_lying_index_with_a_valid_hash_cannot_reach_outside_the_file(saved):
    p, src = saved
    idx = open(p + ".pdkidx", "rb").read()
    size = os.path.getsize(p)
    # every 128 x 160 tensor made 128 x 16383 (8 MiB from where its data starts: past the end of
    # the pickle), in as many bytes, so the entry table still points at every entry
    body = bytearray(idx[HEADER:])
    shape, lie = (bytes([2]) + varint(128, 2) + varint(160, 2),
                  bytes([2]) + varint(128, 2) + varint(16383, 2))
    assert 128 * 16383 * 4 > size
    assert body.count(shape) == 6
    body = body.replace(shape, lie)
    open(p + ".pdkidx", "wb").write(rehash(idx[:HEADER] + bytes(body)))
    # the open checks the stamp, hash and entry table; each entry is checked when it is made
    r = pdckpt.open(p)
    for k in src:
        if k.endswith(".weight"):
            with pytest.raises(pdckpt.CorruptError, match="lazy-open index"):
                r[k]
        else:
            assert np.array_equal(r[k], src[k])  # an entry not lied about is made
    # a whole-tree zero-copy load checks every entry first: the pickle is parsed
    assert_same({k: np.array(v) for k, v in pdckpt.load(p, mmap=True, return_numpy=True).items()
                 if k != NAME_TABLE_KEY}, src)


def test_index_of_another_file_is_ignored(tmp_path):
    a, b = str(tmp_path / "a.pdparams"), str(tmp_path / "b.pdparams")
    sa, sb = state(seed=2), state(seed=3)
    pdckpt.save(sa, a)
    pdckpt.save(sb, b)
    os.replace(a + ".pdkidx", b + ".pdkidx")
    assert_same(tree(b), sb)


def test_reads_and_verify_never_use_the_index(saved):
    p, src = saved
    open(p + ".pdkidx", "wb").write(b"PDKIDX1\n" + b"\xff" * 200)
    assert_same(parsed(p), src)
    assert_same(parsed(p, verify=True), src)


def test_index_with_a_name_that_is_not_utf8_is_ignored(saved):
    """A parse refuses a key that is not UTF-8; an index holding one (hash made to match) is no
    shortcut around that: ignored, the pickle parsed."""
    p, src = saved
    idx = open(p + ".pdkidx", "rb").read()
    body = bytearray(idx[HEADER:])
    at = body.find(b"layer1.weight")
    assert at > 0
    body[at + 5] = 0xFF
    open(p + ".pdkidx", "wb").write(rehash(idx[:HEADER] + bytes(body)))
    with pytest.raises(pdckpt.CorruptError, match="entry 1 of the lazy-open index"):
        pdckpt.open(p).keys()
    assert_same({k: np.array(v) for k, v in pdckpt.load(p, mmap=True, return_numpy=True).items()
                 if k != NAME_TABLE_KEY}, src)


def stamp(path):
    """The header's stamp of the pickle as it is now (what a forger can compute: nothing in it is
    secret): size, inode, device, mtime and ctime in ns, xxh3 of the first and last 64 KiB."""
    st, data = os.stat(path), open(path, "rb").read()
    edge = min(len(data), 64 << 10)
    return struct.pack("<7Q", st.st_size, st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns,
                       xxh3(data[:edge]), xxh3(data[len(data) - edge:]))


def test_stale_index_whose_stamp_was_made_to_match_never_gives_wrong_data(saved):
    """The stamp cannot tell every rewrite (a coarse clock, a forger): the pickle rewritten with
    its tensors in another order and the old index stamped for the new file.  Every tensor whose
    payload no longer sits where the index says is refused when made; one that still does is
    right (its bytes are read from the file as it is now)."""
    p, src = saved
    idx = open(p + ".pdkidx", "rb").read()
    other = dict(reversed(list(src.items())))  # the same tensors, laid out in reverse
    os.unlink(p)
    pdckpt.save(other, p)
    assert os.path.getsize(p) == len(open(p, "rb").read())
    open(p + ".pdkidx", "wb").write(idx[:8] + stamp(p) + idx[HEADER - 16:])
    r = pdckpt.open(p)
    assert [k for k in r.keys() if k != NAME_TABLE_KEY] == list(src)  # the old index opened
    refused = 0
    for k in src:
        try:
            got = np.array(r[k])
        except pdckpt.CorruptError as e:
            assert "pickle changed since its index" in str(e)
            refused += 1
            continue
        assert got.dtype == src[k].dtype and np.array_equal(got, src[k]), k
    assert refused >= len(src) - 1


def test_index_of_an_older_version_is_ignored_and_removed(saved):
    """A version-2 index (no payload guarantee) is never read: the pickle is parsed; a save that
    writes no index removes it."""
    p, src = saved
    idx = bytearray(open(p + ".pdkidx", "rb").read())
    idx[6] = ord("2")
    open(p + ".pdkidx", "wb").write(idx)
    assert pdckpt._native.open_lazy(p) is None
    assert_same(tree(p), src)
    pdckpt.save({"step": 1, "w": np.zeros(4, np.float32)}, p)  # small: no index written
    assert not os.path.exists(p + ".pdkidx")


def test_huge_index_file_is_neither_read_nor_kept(saved):
    """A planted 3 GiB (sparse) "<file>.pdkidx" was read whole into memory before its size was
    judged: the open now sizes it first (the index is at most 64 MiB) and parses the pickle; the
    child's peak memory stays far below the file's size."""
    import subprocess
    import sys
    p, src = saved
    with open(p + ".pdkidx", "r+b") as f:
        f.truncate(3 << 30)
    code = ("import sys, numpy as np, pdckpt\n"
            "r = pdckpt.open(sys.argv[1])\n"
            "assert float(np.array(r['layer2.weight']).sum()) == float(sys.argv[2])\n"
            "print(next(int(l.split()[1]) for l in open('/proc/self/status')\n"
                "           if l.startswith('VmHWM:')))  # this process's own peak since exec\n")
    want = repr(float(src["layer2.weight"].sum()))
    out = subprocess.run([sys.executable, "-c", code, p, want], capture_output=True, text=True,
                         env=_child_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 1 << 20, out.stdout  # KiB: under 1 GiB


def _child_env():
    """The environment of a child Python that imports the in-tree pdckpt (another test may have
    changed PYTHONPATH in this process)."""
    from conftest import PY_STAGE
    paths = [str(PY_STAGE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def small_state(paddle=None, n=50):
    """Small tensors of every dtype a state dict keeps through numpy, 0-d and empty ones: Paddle
    tensors (their own names) or numpy arrays (named by their keys in the file).  No 1-byte
    payload (those are shared, see below): 0-d tensors are of float dtypes only."""
    rng = np.random.default_rng(5)
    dts = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool"]
    out = {}
    for i in range(n):
        shape = () if i % 9 < 3 else (i % 4 * 2,) if i % 2 else (i % 4, 3)
        a = rng.standard_normal(shape).astype(dts[i % len(dts)])
        out[f"layer{i}.w_0"] = a if paddle is None else paddle.to_tensor(a)
    return out


def entries_of(tree):
    """Every entry of a native tree: (key, kind, name, dtype, shape, bytes) or the value."""
    out = []
    for i, k in enumerate(tree.keys()):
        if tree.kind(i) == "tensor":
            t, a = tree.tensor(i), np.asarray(tree.convert(i))
            out.append((k, t.name, t.dtype, t.shape, a.tobytes()))
        else:
            out.append((k, tree.convert(i)))
    return out


@pytest.mark.parametrize("kind", ["paddle", "numpy"])
def test_small_state_dict_is_indexed_from_the_save_and_opens_entry_by_entry(tmp_path, kind):
    """A state dict of 1 KiB tensors (the benchmark's W2) gets its index from the save itself (no
    parse), and pdckpt.open makes its entries on access from it: keys, names, dtypes, shapes and
    bytes exactly what a parse gives, the name table included."""
    paddle = __import__("paddle") if kind == "paddle" else None
    p = str(tmp_path / "small.pdparams")
    src = small_state(paddle)
    pdckpt.save(src, p)
    assert os.path.exists(p + ".pdkidx")
    lazy = pdckpt._native.open_lazy(p)
    assert lazy is not None and len(lazy) == len(src) + 1
    want = entries_of(pdckpt._native.load(p, mmap=True, verify=True))  # verify: always a parse
    assert entries_of(lazy) == want
    assert entries_of(pdckpt._native.load(p, mmap=True)) == want  # the whole tree from the index
    r = pdckpt.open(p)
    assert r.keys() == [w[0] for w in want] and len(r) == len(want)
    names = r[NAME_TABLE_KEY]
    assert names == dict(want[-1][1])
    for k, v in src.items():
        assert np.array_equal(r[k], np.asarray(v)) and r.tensor(k).name == names[k]
    assert r.kind(NAME_TABLE_KEY) == "dict" and "nope" not in r
    r.close()
    assert r.keys() == [w[0] for w in want]  # still answered after close, as for any tree


def test_one_byte_payloads_shared_through_the_memo_are_not_indexed_wrongly(tmp_path):
    """CPython shares 1-byte bytes objects, so two equal 1-byte tensors are one payload in the
    file; such a save writes no index from the save (and what opens is what a parse gives)."""
    p = str(tmp_path / "bytes.pdparams")
    src = {"a": np.array(7, np.int8), "b": np.array(7, np.int8), "c": np.array([1, 2], np.int8)}
    pdckpt.save(src, p)
    assert not os.path.exists(p + ".pdkidx")
    r = pdckpt.open(p)
    for k, v in src.items():
        assert np.array_equal(r[k], v)



def forged_epoch(tmp_path, umask=0o022):
    """A pickle saved with its index under `umask`, and a forged index beside it (the epoch 5 made
    999, the hash made to match: the stamp is no secret), written in place of the real one with
    the pickle's mode (the pickle itself is left untouched: a chmod would change its ctime)."""
    p = str(tmp_path / "model.pdparams")
    old = os.umask(umask)
    try:
        pdckpt.save(dict(state(n=2), epoch=5), p)
    finally:
        os.umask(old)
    idx = open(p + ".pdkidx", "rb").read()
    body = bytearray(idx[HEADER:])
    at = body.find(bytes([3]) + struct.pack("<q", 5))  # IK_INT 5
    assert at > 0
    body[at + 1:at + 9] = struct.pack("<q", 999)
    os.unlink(p + ".pdkidx")
    open(p + ".pdkidx", "wb").write(rehash(idx[:HEADER] + bytes(body)))
    os.chmod(p + ".pdkidx", os.stat(p).st_mode & 0o777)
    assert epochs(p) == (999, 999)  # what a trusted forgery gives (the writers are the pickle's)
    return p


def epochs(p):
    return (pdckpt.open(p)["epoch"], pdckpt.load(p, mmap=True, return_numpy=True)["epoch"])


def test_an_index_others_may_write_is_not_trusted(tmp_path):
    """Anyone who may create files beside a pickle (a sticky /tmp, a shared group directory) can
    compute its stamp; an index that someone who cannot write the pickle could write was trusted,
    so they chose every value a zero-copy open returned.  Now the index is used only when its
    writers are the pickle's: an index others may write (mode o+w, or g+w with the pickle not),
    is ignored and the pickle parsed."""
    p = forged_epoch(tmp_path)  # the pickle 0644
    os.chmod(p + ".pdkidx", 0o646)
    assert epochs(p) == (5, 5)
    os.chmod(p + ".pdkidx", 0o664)
    assert epochs(p) == (5, 5)
    sub = tmp_path / "shared"
    sub.mkdir()
    forged_epoch(sub, umask=0o002)  # both 0664, one group: trusted


def test_an_index_owned_by_another_user_is_not_trusted(tmp_path):
    """The planted file of another user (here `nobody`, by chown: needs root, as the tests run
    here; without root the mode rule above is the test) is ignored; root's is trusted (a save
    by root over a user's file gives the pickle back to its owner, the index stays root's)."""
    if os.geteuid() != 0:
        return
    p = forged_epoch(tmp_path)
    os.chown(p + ".pdkidx", 65534, 65534)
    assert epochs(p) == (5, 5)
    os.chown(p + ".pdkidx", 0, 0)
    assert epochs(p) == (999, 999)


def test_a_link_at_the_index_name_is_not_followed(tmp_path):
    """pdckpt writes its index as a file; a symbolic link at the name (to a file whose bytes an
    attacker chose, owned by the pickle's owner) is not followed."""
    p = forged_epoch(tmp_path)
    os.rename(p + ".pdkidx", str(tmp_path / "elsewhere"))
    os.symlink(str(tmp_path / "elsewhere"), p + ".pdkidx")
    assert epochs(p) == (5, 5)


def leb(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def test_name_tables_anywhere_but_last_are_refused(saved):
    """The writer puts the derived name table (IK_NAMES) once, as the root's last entry; a forged
    index (a valid stamp: its owner's) with one in every entry made each a pass over the entries
    before it -- 20,000 of them took 9 s to load, quadratic.  Now an IK_NAMES anywhere else
    makes the index "not what pdckpt writes": a whole-tree load parses the pickle."""
    p, src = saved
    n = 3000
    body, table = bytearray([10]) + leb(n), []  # IK_DICT n
    for i in range(n):
        table.append(len(body))
        key = b"k%d" % i
        body += bytes([5]) + leb(len(key)) + key + bytes([12])  # IK_STRING key, IK_NAMES
    body += b"".join(struct.pack("<Q", t) for t in table) + struct.pack("<Q", n)
    idx = open(p + ".pdkidx", "rb").read()
    open(p + ".pdkidx", "wb").write(rehash(idx[:8] + stamp(p) + idx[HEADER - 16:HEADER] +
                                           bytes(body)))
    got = pdckpt.load(p, mmap=True, return_numpy=True)
    assert_same({k: v for k, v in got.items() if k != NAME_TABLE_KEY}, src)
    r = pdckpt.open(p)  # the entry table itself is well formed: opened, each entry refused
    assert len(r.keys()) == n and r[f"k{n - 1}"] == {}
    with pytest.raises(pdckpt.CorruptError, match="lazy-open index"):
        r["k5"]
