# SPDX-License-Identifier: Apache-2.0
"""Names from a file never reach a terminal raw (pdckpt.h, "Display-safe text";
docs/RELIABILITY.md).  Checkpoints whose keys, variable names, file names and dtype strings
carry terminal escapes (colour, OSC window title), a newline that would forge an output line,
C1 controls, bidi overrides and bytes that are not UTF-8 go through every command that prints
names: the output holds none of those characters raw, shows the escaped spelling, keeps normal
non-ASCII names readable, and --json stays valid JSON that reads back to the exact names.  Error
messages quoting such a name are escaped the same way, from the CLI and from pdckpt.load; the
keys pdckpt.load returns stay byte-exact."""
import json
import os
import pickle
import struct
import subprocess
import unicodedata

import numpy as np
import pytest

import hostile_pickles as hp
import pdckpt
from conftest import PDCKPT_BIN

HOSTILE = "ok\x1b[31mRED\x1b]0;pwned\x07\nfake line"
RLO = "b\u202eevil"
C1 = "c\x9b31m\x85"
ISOLATE = "d\u2066x\u2069\u2028"
BACKSLASH = "e\\x1b"  # a name that spells an escape: shown with its backslash doubled
CJK = "权重.w_0"  # printable non-ASCII: shown as it is
NAMES = [HOSTILE, RLO, C1, ISOLATE, BACKSLASH, CJK]
SHOWN = {
    HOSTILE: "ok\\x1b[31mRED\\x1b]0;pwned\\x07\\nfake line",
    RLO: "b\\u202eevil",
    C1: "c\\u009b31m\\u0085",
    ISOLATE: "d\\u2066x\\u2069\\u2028",
    BACKSLASH: "e\\\\x1b",
    CJK: CJK,
}
# in messages backslashes are kept (a message re-wrapped by an outer layer is not escaped twice)
IN_MESSAGE = {**SHOWN, BACKSLASH: BACKSLASH}
UNSAFE = {chr(c) for c in [*range(0x80, 0xa0), 0x61c, 0x200e, 0x200f, *range(0x202a, 0x202f),
                           *range(0x2066, 0x206a), 0x2028, 0x2029]}


def run(*args, check=None):
    """The CLI's output as bytes (what a terminal would be handed)."""
    proc = subprocess.run([str(PDCKPT_BIN), *map(str, args)], capture_output=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def assert_safe(raw):
    """No control byte but the line ends, no DEL, valid UTF-8 without C1 or bidi controls, and
    no forged line."""
    bad = sorted({b for b in raw if (b < 0x20 and b != 0x0a) or b == 0x7f})
    assert not bad, (bad, raw)
    text = raw.decode("utf-8")  # bytes that are not UTF-8 were escaped
    assert not UNSAFE & set(text), (UNSAFE & set(text), text)
    assert not any(line.startswith("fake line") for line in text.splitlines()), text
    return text


def columns(text):
    """Terminal columns: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def shown_all(text, names, spelling=SHOWN):
    for n in names:
        assert spelling[n] in text, (spelling[n], text)


def state(names, value=1.0):
    return {n: np.full((2, 2), value + i, "float32") for i, n in enumerate(names)}


@pytest.fixture
def hostile_pickle(tmp_path):
    path = tmp_path / "h.pdparams"
    with open(path, "wb") as f:
        pickle.dump({**state(NAMES), "note" + HOSTILE: "text\x1b]52;c;cHduZWQ=\x07" + RLO}, f,
                    protocol=2)
    return path


def test_returned_keys_stay_exact(hostile_pickle):
    tree = pdckpt.load(str(hostile_pickle))
    assert sorted(tree.keys()) == sorted([*NAMES, "note" + HOSTILE])


def test_ls_table_and_json(hostile_pickle):
    text = assert_safe(run("ls", hostile_pickle, check=0).stdout)
    shown_all(text, NAMES)
    assert "note" + SHOWN[HOSTILE] + " = 'text\\x1b]52;c;cHduZWQ=\\x07b\\u202eevil'" in text
    rows = [line for line in text.splitlines() if "float32" in line]
    assert len({columns(line[:line.index("float32")]) for line in rows}) == 1, rows  # aligned
    raw = run("ls", "--json", hostile_pickle, check=0).stdout
    assert_safe(raw)
    listed = json.loads(raw)
    assert {t["key"][0] for t in listed["tensors"]} == set(NAMES)  # exact after json.loads
    assert listed["scalars"][0]["value"] == "text\x1b]52;c;cHduZWQ=\x07" + RLO


def test_stats_diff_check_verify(hostile_pickle, tmp_path):
    other = tmp_path / "o.pdparams"
    with open(other, "wb") as f:  # a name missing, one extra, values and a dtype changed
        pickle.dump({**state(NAMES[1:], 5.0), CJK: np.zeros((2, 2), "float64"),
                     HOSTILE + "2": np.zeros(1, "int8")}, f, protocol=2)
    text = assert_safe(run("stats", hostile_pickle, check=0).stdout)
    shown_all(text, NAMES)
    stats = run("stats", "--json", hostile_pickle, check=0).stdout
    assert_safe(stats)
    assert {t["key"][0] for t in json.loads(stats)["tensors"]} == set(NAMES)
    proc = run("diff", hostile_pickle, other, check=1)
    text = assert_safe(proc.stdout + proc.stderr)
    assert "only in A: [\"ok\\u001b[31mRED\\u001b]0;pwned\\u0007\\u000afake line\"]" in text
    assert "data differs at [\"b\\u202eevil\"]" in text
    assert "dtype differs at [\"权重.w_0\"]: float32 vs float64" in text
    proc = run("check", hostile_pickle, other, check=1)
    text = assert_safe(proc.stdout + proc.stderr)
    shown_all(text, [HOSTILE, CJK])
    assert "dtype mismatch: 权重.w_0: expected float32 [2, 2], found float64 [2, 2]" in text
    assert "unexpected: " + SHOWN[HOSTILE] + "2 (int8 [1])" in text
    check = run("check", "--json", hostile_pickle, other, check=1).stdout
    assert_safe(check)
    assert {i["name"] for i in json.loads(check)["issues"]} >= {HOSTILE, HOSTILE + "2"}
    assert_safe(run("verify", hostile_pickle, check=0).stdout)


def test_name_that_is_not_utf8(tmp_path):
    """A pickle may hold a lone surrogate (bytes ED A0 80): shown as \\x escapes, and in JSON as
    the lone surrogates Python's surrogateescape reads back to the exact bytes."""
    path = tmp_path / "s.pdparams"
    path.write_bytes(hp.proto(4) + b"}" + hp.text("w\ud800") + hp.ndarray_p4() + b"s.")
    text = assert_safe(run("ls", path, check=0).stdout)
    assert "w\\xed\\xa0\\x80" in text
    raw = run("ls", "--json", path, check=0).stdout
    assert_safe(raw)
    key = json.loads(raw)["tensors"][0]["key"][0]
    assert key.encode("utf-8", "surrogateescape") == b"w\xed\xa0\x80"


def test_safetensors_and_vars_dir(hostile_pickle, tmp_path):
    st, vd = tmp_path / "h.safetensors", tmp_path / "vd"
    for out, extra in ((st, ()), (vd, ("--to", "vars-dir", "--skip-non-tensors"))):
        proc = run("convert", hostile_pickle, out, *extra, check=0)
        assert_safe(proc.stdout + proc.stderr)
    assert set(NAMES) <= set(os.listdir(vd))  # a vars-dir's file names are the names
    for path in (st, vd):
        text = assert_safe(run("ls", path, check=0).stdout)
        shown_all(text, NAMES)
        assert_safe(run("verify", path, check=0).stdout)
        assert_safe(run("stats", path, check=0).stdout)


def test_safetensors_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    pdckpt.save({RLO: np.ones(2, "float32")}, str(path), metadata={HOSTILE: C1 + "\x07"})
    text = assert_safe(run("ls", path, check=0).stdout)
    assert "__metadata__/" + SHOWN[HOSTILE] + " = 'c\\u009b31m\\u0085\\x07'" in text, text
    raw = run("ls", "--json", path, check=0).stdout
    assert_safe(raw)
    assert json.loads(raw)["scalars"] == [{"key": ["__metadata__", HOSTILE], "value": C1 + "\x07"}]


def _bad_safetensors(path, name):
    """A safetensors file whose one tensor names data past the end: an error naming it."""
    header = json.dumps({name: {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    return path


def test_error_messages_are_escaped(tmp_path):
    name = HOSTILE + RLO + C1 + BACKSLASH
    path = _bad_safetensors(tmp_path / "bad.safetensors", name)
    want = "tensor '" + "".join(IN_MESSAGE[n] for n in (HOSTILE, RLO, C1, BACKSLASH)) + "'"
    for cmd in ("ls", "verify", "stats"):
        proc = run(cmd, path, check=1)
        text = assert_safe(proc.stdout + proc.stderr)
        assert want in text and "expected data_offsets within" in text, text
    with pytest.raises(pdckpt.FormatError) as e:
        pdckpt.load(str(path))
    for text in (str(e.value), e.value.message):
        assert_safe(text.encode("utf-8"))
        assert want in text, text
    glob = tmp_path / "g.pdparams"  # a refused global's names, from the pickle reader
    glob.write_bytes(hp.proto(2) + hp.gtext("os\x1b[31m", "sys\u202etem") + b".")
    text = assert_safe(run("verify", glob, check=1).stderr)
    assert "refusing global os\\x1b[31m.sys\\u202etem" in text
    with pytest.raises(pdckpt.Error) as e:
        pdckpt.load(str(glob))
    assert "os\\x1b[31m.sys\\u202etem" in str(e.value)
    assert_safe(str(e.value).encode("utf-8"))


def test_error_source_path_is_escaped(tmp_path):
    """The file's own name (a hostile directory listing's) is escaped in the error line too;
    the exception's source attribute stays the path as given."""
    path = tmp_path / ("x\x1b]0;t\x07\n.pdparams")
    path.write_bytes(b"\x80\x02F1\xe0\n.")
    text = assert_safe(run("verify", path, check=1).stderr)
    assert "x\\x1b]0;t\\x07\\n.pdparams: offset 2" in text
    with pytest.raises(pdckpt.Error) as e:
        pdckpt.load(str(path))
    assert_safe(str(e.value).encode("utf-8"))
    assert e.value.source == str(path)


def test_program_variables_and_combined(tmp_path, paddle_np):
    paddle, _ = paddle_np
    prog = tmp_path / "p.pdmodel"
    paddle.enable_static()
    try:
        with paddle.pir_utils.OldIrGuard():
            main, startup = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(main, startup):
                paddle.static.data(RLO, [None, 4], "float32")
                paddle.static.create_parameter([2, 2], "float32", name=HOSTILE)
                paddle.static.create_parameter([2, 2], "float32", name=CJK)
            prog.write_bytes(main.desc.serialize_to_string())
    finally:
        paddle.disable_static()
    text = assert_safe(run("ls", prog, check=0).stdout)
    shown_all(text, [HOSTILE, RLO, CJK])
    raw = run("ls", "--json", prog, check=0).stdout
    assert_safe(raw)
    assert {v["name"] for v in json.loads(raw)["variables"]} == {HOSTILE, RLO, CJK}
    src, combined = tmp_path / "s.pdparams", tmp_path / "c.pdiparams"
    with open(src, "wb") as f:
        pickle.dump(state([HOSTILE, CJK]), f, protocol=2)
    assert_safe(run("convert", src, combined, "--out-program", prog, check=0).stdout)
    text = assert_safe(run("ls", "--program", prog, combined, check=0).stdout)
    shown_all(text, [HOSTILE, CJK])


def test_sharded_checkpoint_keys(tmp_path, paddle_np):
    paddle, _ = paddle_np
    from paddle.distributed.flex_checkpoint.dcp.metadata import (
        LocalTensorIndex, LocalTensorMetadata, Metadata)
    ck = tmp_path / "ck"
    ck.mkdir()
    paddle.save({HOSTILE: paddle.to_tensor(np.ones(4, "float32"))}, str(ck / "0_0.distcp"))
    sdm = {HOSTILE: [LocalTensorMetadata((0,), (4,), "float32", (4,), False, None)]}
    storage = {LocalTensorIndex(HOSTILE, (0,), False, None, None, (4,)): "0_0.distcp"}
    paddle.save(Metadata(sdm, storage, {}), str(ck / "0.metadata"))
    for args in (("ls", ck), ("ls", "--json", ck), ("stats", ck)):
        proc = run(*args, check=0)
        text = assert_safe(proc.stdout + proc.stderr)
        if "--json" not in args:
            assert SHOWN[HOSTILE] in text, text
    assert list(pdckpt.load(str(ck)).keys()) == [HOSTILE]
