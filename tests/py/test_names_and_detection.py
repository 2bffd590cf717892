# SPDX-License-Identifier: Apache-2.0
"""Names in files are UTF-8 text, and a file whose bytes no format recognises is diagnosed by the
format its name implies (issue 16 item 8)."""
import json
import struct
import subprocess

import pytest

from conftest import PDCKPT_BIN, run_cli


def safetensors(name_bytes):
    header = (b'{"' + name_bytes + b'":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
    return struct.pack("<Q", len(header)) + header + b"\0\0\x80?"


@pytest.mark.parametrize("name,bad", [
    (b"w\xff", 0xff),                # not UTF-8 at all
    (b"w\xc3", 0xc3),                # a sequence cut short
    (b"w\xc0\xaf", 0xc0),            # an overlong '/'
    (b"w\xed\xa0\x80", 0xed),        # an encoded surrogate (CESU / WTF-8)
    (b"w\xf4\x90\x80\x80", 0xf4),    # beyond U+10FFFF
])
def test_safetensors_key_not_utf8_is_refused(tmp_path, name, bad):
    path = tmp_path / "m.safetensors"
    data = safetensors(name)
    path.write_bytes(data)
    at = data.index(name) + 1
    for cmd in ("verify", "ls"):
        proc = run_cli(cmd, path)
        assert proc.returncode == 1
        assert proc.stderr == (f"pdckpt: {path}: offset {at}: expected UTF-8 text inside a string, "
                               f"found byte 0x{bad:02x}\n")
    assert run_cli("convert", path, tmp_path / "out.pdparams").returncode == 1
    assert not (tmp_path / "out.pdparams").exists()


def test_safetensors_unicode_keys_are_kept(tmp_path):
    path = tmp_path / "m.safetensors"
    name = "résumé.ß.😀"
    path.write_bytes(safetensors(name.encode()))
    listing = json.loads(run_cli("ls", "--json", path, check=0).stdout)
    assert listing["tensors"][0]["key"] == [name]
    run_cli("convert", path, tmp_path / "out.pdparams", check=0)
    run_cli("verify", tmp_path / "out.pdparams", check=0)


@pytest.mark.parametrize("fixture,name,fmt", [
    ("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams", "m.pdiparams", "combined"),
    ("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams", "__params__", "combined"),
    ("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdmodel", "m.pdmodel", "program"),
    ("fit_a_line-sepfiles-2019-05/__model__", "__model__", "program"),
    ("paddle.save-2022-12-proto4/model.pdparams", "m.pdparams", "pickle"),
])
@pytest.mark.parametrize("cut", [0, 1, 2, 7, 30])
def test_truncated_file_is_diagnosed_by_its_name(tmp_path, fixtures_dir, fixture, name, fmt, cut):
    data = (fixtures_dir / fixture).read_bytes()[:cut]
    path = tmp_path / name
    path.write_bytes(data)
    auto = run_cli("verify", path)
    forced = run_cli("verify", "--format", fmt, path)
    assert auto.returncode == forced.returncode == 1
    assert auto.stderr == forced.stderr, (auto.stderr, forced.stderr)
    assert "found none that pdckpt recognises" not in auto.stderr
    # a name that implies nothing keeps the plain answer
    other = tmp_path / "blob.bin"
    other.write_bytes(b"\x01\x02garbage")
    assert "found none that pdckpt recognises" in run_cli("verify", other).stderr


def test_pickle_key_with_a_lone_surrogate_is_not_written_as_json(tmp_path):
    """CPython's pickles may hold lone surrogates (Python str allows them); JSON text may not, so
    a safetensors save refuses such a key instead of writing a file it cannot read back."""
    import hostile_pickles as hp
    src = tmp_path / "s.pdparams"
    src.write_bytes(hp.proto(4) + b"}" + hp.text("w\ud800") + hp.ndarray_p4() + b"s.")
    run_cli("verify", src, check=0)
    proc = run_cli("convert", src, tmp_path / "s.safetensors")
    assert proc.returncode == 1 and "JSON text must be UTF-8, found byte 0xed at 1" in proc.stderr
    assert not (tmp_path / "s.safetensors").exists()


def test_messages_quote_bad_input_bytes_as_ascii(tmp_path):
    """A diagnosis quoting input text shows the bytes that are not printable ASCII as \\xNN, so
    the message itself is always UTF-8 (a bit flip found this in the FLOAT opcode)."""
    path = tmp_path / "f.pdparams"
    path.write_bytes(b"\x80\x02F1\xe0\n.")
    proc = subprocess.run([str(PDCKPT_BIN), "verify", str(path)], capture_output=True)
    assert proc.returncode == 1
    assert proc.stderr.decode("utf-8") == (f"pdckpt: {path}: offset 2: FLOAT: expected a float, "
                                           "found '1\\xe0'\n")
    for name in (b"m\xed\xa0\x80", b"m\xff"):  # a global whose name is not UTF-8 text
        path.write_bytes(b"\x80\x02c" + name + b"\nf\n.")
        proc = subprocess.run([str(PDCKPT_BIN), "verify", str(path)], capture_output=True)
        assert proc.returncode == 1
        assert "expected a module name (non-empty UTF-8 text)" in proc.stderr.decode("utf-8")


def test_native_suffixes_are_the_registry_s():
    """_native.SUFFIXES (pdckpt_format_suffixes) is the registry's list the saves read: every
    suffix it gives a format makes a save name that format, and the names the 1.x dygraph and
    static helpers write (.pdparams/.pdopt, .pdmodel/.json, .pdiparams) are the ones it lists."""
    from pdckpt import _native, dygraph, static

    table = _native.SUFFIXES
    assert set(table) == set(_native.formats())  # every format of this build, no other
    for name, suffixes in table.items():
        for suffix in suffixes:
            assert _native.format_from_path("out/x" + suffix) == name, (name, suffix)
    assert table["pickle"][:2] == (dygraph._PARAMS, dygraph._OPT) == (".pdparams", ".pdopt")
    assert static._PROGRAMS == (".pdmodel", ".json") and static._PARAMS == ".pdiparams"
    assert table["vars-dir"] == ()  # a directory: no name ending implies it
