# SPDX-License-Identifier: Apache-2.0
"""Complexity attacks (docs/RELIABILITY.md, "Complexity attacks"): small, well-formed files
crafted so that a linear-looking load goes quadratic.  Each case builds its file here (no
committed binaries) at a size where the quadratic code took a minute or more on the 2-core CI
machine and the fixed code takes a second or two; the bound is a subprocess timeout, generous
enough for a loaded machine, that the old code could not meet."""
import subprocess

import flood_keys
from conftest import run_cli

HANG = 25  # seconds: the fixed loads below take 1-3 s, the old ones 60 s and more


def test_sharded_metadata_with_keys_crafted_to_collide(tmp_path):
    """50,000 keys whose unseeded FNV-1a hashes share their low 24 bits put every key of the
    metadata index (and every piece of the (key, offset) table) in one cluster: `pdckpt verify`
    took ~60 s here (37.6 s at 40,000 keys, 8.8 s at 20,000) before the tables were seeded per
    process.  The load is also checked to be right, not only quick."""
    keys = flood_keys.colliding_keys(50_000)
    assert len({flood_keys.fnv1a(k.encode()) & 0xFFFFFF for k in keys}) == 1  # they do collide
    flood_keys.write_checkpoint(tmp_path / "ck", keys)
    try:
        proc = run_cli("verify", tmp_path / "ck", timeout=HANG)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pdckpt verify of 50,000 colliding keys took over {HANG} s")
    assert proc.returncode == 0, proc.stderr
    import pdckpt
    out = pdckpt.load(str(tmp_path / "ck"), return_numpy=True)
    assert len(out) == len(keys)
    assert [float(out[k][0]) for k in (keys[0], keys[-1])] == [0.0, len(keys) - 1]


def test_sharded_ls_of_metadata_naming_many_files(tmp_path):
    """`pdckpt ls` counted pieces per data file by scanning the files seen so far for each piece:
    metadata naming 70,000 distinct files (long names with a common prefix, each compare costs
    more) took ~40 s to list (19.9 s at 100,000 short names); now it sorts.  Only the metadata
    is needed: ls never opens the data files."""
    n = 70_000
    ck = tmp_path / "ck"
    ck.mkdir()
    files = ["f" * 240 + "%d.distcp" % i for i in range(n)]
    files[-1] = files[0]  # one file named twice: counted together, listed where first named
    keys = ["w.%06d" % i for i in range(n)]
    (ck / "0.metadata").write_bytes(flood_keys.metadata_pickle(keys, files=files))
    try:
        proc = run_cli("ls", "--json", ck, timeout=HANG)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pdckpt ls of metadata naming {n} files took over {HANG} s")
    assert proc.returncode == 0, proc.stderr
    import json
    listed = json.loads(proc.stdout)["files"]
    assert len(listed) == n - 1
    assert listed[0] == {"name": files[0], "pieces": 2}
    assert listed[1] == {"name": files[1], "pieces": 1}
    assert listed[-1]["name"] == files[-2]


def _object_keys_pickle(n):
    """A dict of n object keys whose states have 17 items, the first 16 shared (memo) and the
    last a distinct int: the dict index hashes an object's state only as far as its first 16
    items, so every key shared one slot."""
    import struct

    def s(t):
        return b"X" + struct.pack("<I", len(t)) + t.encode()

    out = [b"\x80\x02", b"c%s\nLocalTensorIndex\nr\0\0\0\x000" % flood_keys._META.encode()]
    out += [s("f%02d" % j) + b"r" + struct.pack("<I", 1 + j) + b"0" for j in range(16)]
    fields = b"".join(b"j" + struct.pack("<I", 1 + j) + b"N" for j in range(16))
    out.append(b"}(")
    for i in range(n):
        state = fields + s("z") + b"J" + struct.pack("<i", i)
        out.append(b"j\0\0\0\0)\x81}(" + state + b"ubN")
    return b"".join(out) + b"u."


def _deep_tuple_keys_tree(n):
    """A safetensors file with no tensors whose pdckpt.tree is a dict of n tuple keys nested 18
    deep around a distinct int: the index hashes 16 levels, so every key shared one slot."""
    import json
    import struct
    pairs = []
    for i in range(n):
        key = '{"i":"%d"}' % i
        for _ in range(18):
            key = '{"u":[%s]}' % key
        pairs.append("[%s,null]" % key)
    tree = '{"v":1,"root":{"d":[%s]}}' % ",".join(pairs)
    head = json.dumps({"__metadata__": {"pdckpt.tree": tree}}).encode()
    return struct.pack("<Q", len(head)) + head


def _refused_quickly(path, what):
    try:
        proc = run_cli("ls", path, timeout=HANG)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pdckpt ls of {what} took over {HANG} s")
    assert proc.returncode != 0
    msg = proc.stderr
    assert str(path) in msg and "offset" in msg, msg
    assert "expected at most 256 keys in one dict that are deeply nested tuples" in msg, msg
    return msg


def test_pickle_dict_of_keys_hashed_in_part(tmp_path):
    """16,000 object keys differing past the 16 state items the index hashes: ls took 47 s (the
    cap was 16,384 such keys per dict); now the 257th is refused (LIMIT), naming the file and the
    SETITEMS offset.  Deep tuple keys had no cap at all (10,000 nested 18 deep: 30 s)."""
    import pdckpt
    path = tmp_path / "keys.pdparams"
    path.write_bytes(_object_keys_pickle(16_000))
    _refused_quickly(path, "16,000 object keys")
    small = tmp_path / "small.pdparams"
    small.write_bytes(_object_keys_pickle(256))  # at the cap: loads, every key kept
    assert len(pdckpt.load(str(small), return_numpy=True)) == 256
    try:
        pdckpt.load(str(path), return_numpy=True)
    except pdckpt.LimitError as e:
        assert str(path) in str(e)
    else:
        raise AssertionError("16,000 partly hashed keys loaded")


def test_safetensors_tree_dict_of_deep_tuple_keys(tmp_path):
    """The same through a safetensors file's pdckpt.tree (2 MB, no tensors): 42 s before."""
    path = tmp_path / "tree.safetensors"
    path.write_bytes(_deep_tuple_keys_tree(10_000))
    _refused_quickly(path, "10,000 deep tuple keys")


def _one_name_many_ways(m):
    """A dict whose 2^(m-1) None leaves all flatten to the name 'a/a/.../a' (m parts): each
    level has the keys 'a', 'a/a', ... so every split of the name is a path.  Shared (memo)
    sub-dicts keep the pickle a few KB."""
    import pickle
    made = {0: None}
    for k in range(1, m + 1):
        made[k] = {"/".join(["a"] * j): made[k - j] for j in range(1, k + 1)}
    return pickle.dumps(made[m], protocol=2)


def test_check_of_many_entries_with_one_name(tmp_path):
    """pdckpt check matched each expected entry by scanning past the already matched ones of its
    name: this 3.6 KB pickle (131,072 entries all named 'a/.../a') checked against itself took
    ~60 s (14.6 s at 65,536); now each name keeps a count of its matches."""
    path = tmp_path / "names.pdparams"
    path.write_bytes(_one_name_many_ways(18))
    assert path.stat().st_size < 4096
    try:
        proc = run_cli("check", "--json", path, path, timeout=HANG)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pdckpt check of 131,072 entries of one name took over {HANG} s")
    import json
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert (report["expected"], report["loaded"], report["matched"]) == (131072,) * 3, report
