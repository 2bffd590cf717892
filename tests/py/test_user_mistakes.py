# SPDX-License-Identifier: Apache-2.0
"""Ten mistakes a Paddle user makes, through pdckpt.load and `pdckpt ls`: each gives a message
that names the file and says what was expected, with a hint where the file is something else
entirely (docs/RELIABILITY.md, "Validation pass").  Two are not errors, on purpose: a .pdopt is
a valid pickle (loading it is how an optimizer resumes; handing it to set_state_dict is the
mistake, which only Paddle sees), and a safetensors file under another name loads by content."""
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import paddle
import pytest

import pdckpt
from conftest import PDCKPT_BIN, PY_STAGE, run_cli


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A state dict and an optimizer state as paddle.save writes them."""
    d = tmp_path_factory.mktemp("mistakes")
    lin = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.Adam(parameters=lin.parameters())
    lin(paddle.ones([1, 3])).sum().backward()
    opt.step()
    paddle.save(lin.state_dict(), str(d / "model.pdparams"))
    paddle.save(opt.state_dict(), str(d / "model.pdopt"))
    return d


def refused(path, *words, cls=pdckpt.FormatError):
    """pdckpt.load and `pdckpt ls` both refuse `path`, naming it and saying `words`."""
    with pytest.raises(cls) as info:
        pdckpt.load(str(path))
    line = str(info.value)
    assert line.startswith(f"{path}: ") and all(w in line for w in words), line
    proc = run_cli("ls", path, check=1)
    assert proc.stderr.startswith(f"pdckpt: {path}: ") and all(w in proc.stderr for w in words)
    return line


def test_a_program_loaded_as_parameters(tmp_path):
    with paddle.pir_utils.OldIrGuard():
        paddle.enable_static()
        try:
            main = paddle.static.Program()
            with paddle.static.program_guard(main, paddle.static.Program()):
                paddle.static.nn.fc(paddle.static.data("x", [None, 6], "float32"), 3)
            paddle.save(main, str(tmp_path / "model.pdmodel"))
        finally:
            paddle.disable_static()
    with pytest.raises(pdckpt.FormatError, match=r"model\.pdmodel: .*is a Paddle program: the "
                       r"model's structure, no weights -- they are in the \.pdiparams or "
                       r"\.pdparams saved beside it; .*OldIrGuard"):
        pdckpt.load(str(tmp_path / "model.pdmodel"))
    # the command line lists what it is
    assert "program" in run_cli("ls", tmp_path / "model.pdmodel", check=0).stdout


def test_a_directory_instead_of_its_file(saved, tmp_path):
    d = tmp_path / "epoch_10"
    d.mkdir()
    (d / "model.pdparams").write_bytes((saved / "model.pdparams").read_bytes())
    refused(d, "expected a checkpoint file or a directory of variable files",
            "'model.pdparams'", "name the file itself")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "expected at least one variable file in the directory")
    # pdckpt's own sidecars beside its file (the lazy-open index, a checksum) are no variables
    # either: the message still names the checkpoint, not a sidecar read as a tensor stream
    ours = tmp_path / "epoch_11"
    ours.mkdir()
    pdckpt.save(paddle.load(str(saved / "model.pdparams")), str(ours / "model.pdparams"))
    (ours / "model.pdparams.xxh3").write_bytes(b"not a variable")
    assert sorted(os.listdir(ours)) == ["model.pdparams", "model.pdparams.pdkidx",
                                        "model.pdparams.xxh3"]
    line = refused(ours, "'model.pdparams'", "name the file itself")
    assert "pdkidx" not in line and "xxh3" not in line


def test_an_optimizer_state_loads_as_what_it_is(saved):
    got, want = pdckpt.load(str(saved / "model.pdopt")), paddle.load(str(saved / "model.pdopt"))
    assert list(got) == list(want) and any(k.endswith("_moment1_0") for k in got)


def test_a_truncated_download(saved, tmp_path):
    whole = (saved / "model.pdparams").read_bytes()
    for n in (len(whole) // 2, len(whole) - 1):
        (tmp_path / "cut.pdparams").write_bytes(whole[:n])
        refused(tmp_path / "cut.pdparams", "offset ", "expected", "it looks truncated")
    header = json.dumps({"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}).encode()
    (tmp_path / "cut.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(99))
    refused(tmp_path / "cut.safetensors", "offset 9: tensor 'w': expected data_offsets within",
            "the file ends at least 301 bytes too soon: it looks truncated -- an interrupted")


def test_an_html_error_page(tmp_path):
    path = tmp_path / "model.pdparams"
    path.write_bytes(b"\n<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>"
                     b"<body>Access denied</body></html>\n")
    refused(path, "offset 0: expected a checkpoint, found an HTML/XML page titled "
            "'403 Forbidden'", "download it again")


def test_a_git_lfs_pointer(tmp_path):
    path = tmp_path / "model.pdparams"
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"4d" * 32 +
                     b"\nsize 98765432\n")
    refused(path, "offset 0: expected a checkpoint, found a Git LFS pointer", "git lfs pull")


def test_a_pytorch_zip(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:  # the layout torch.save writes
        z.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("model/version", b"3\n")
    refused(path, "offset 0: expected a checkpoint, found a PyTorch checkpoint", "safetensors")


def test_an_empty_file(tmp_path):
    (tmp_path / "model.pdparams").write_bytes(b"")
    refused(tmp_path / "model.pdparams", "offset 0: expected a pickle, found an empty file")
    (tmp_path / "model.bin").write_bytes(b"")  # a name that implies no format
    refused(tmp_path / "model.bin", "offset 0: expected a checkpoint, found an empty file")


def test_a_safetensors_file_under_another_name_loads_by_content(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "model.pdparams"
    path.write_bytes(struct.pack("<Q", len(header)) + header + np.float32([1, 2]).tobytes())
    np.testing.assert_array_equal(pdckpt.load(str(path), return_numpy=True)["w"], [1, 2])


def as_nobody():
    """Drops root (root reads any file) in the child, so the permission check applies."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)


def test_permission_denied(saved, tmp_path):
    path = tmp_path / "model.pdparams"
    path.write_bytes((saved / "model.pdparams").read_bytes())
    path.chmod(0)
    proc = subprocess.run([str(PDCKPT_BIN), "ls", str(path)], capture_output=True, text=True,
                          preexec_fn=as_nobody, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith(f"pdckpt: {path}: ")
    assert "Permission denied" in proc.stderr, proc.stderr
    code = ("import sys, pdckpt\ntry:\n    pdckpt.load(sys.argv[1])\nexcept pdckpt.IoError as e:\n"
            "    print(isinstance(e, PermissionError) or isinstance(e, OSError), e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         preexec_fn=as_nobody, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(PY_STAGE)}).stdout
    assert out.startswith(f"True {path}: ") and "Permission denied" in out, out


def test_a_pickle_that_paddle_saved_as_safetensors(tmp_path):
    """paddle.save(dict of NumPy arrays, safetensors=True) writes a pickle (Paddle 3.3.1), which
    paddle.load(..., safetensors=True) then refuses: pdckpt refuses it too, saying what it is,
    and loads it as paddle.load does without the flag."""
    path = str(tmp_path / "w.safetensors")
    paddle.save({"a": np.arange(3, dtype="float32")}, path, safetensors=True)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x80\x04"  # Paddle's pickle, under the name it was given
    with pytest.raises(pdckpt.LimitError, match=r"offset 0: .*starts as a pickle does"):
        pdckpt.load(path, safetensors=True)
    ours, theirs = pdckpt.load(path), paddle.load(path)
    assert list(ours) == list(theirs) == ["a"]
    np.testing.assert_array_equal(np.asarray(ours["a"]), np.asarray(theirs["a"]))
