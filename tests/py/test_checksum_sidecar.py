# SPDX-License-Identifier: Apache-2.0
"""Checksum sidecars (`convert --checksum` -> "<file>.xxh3"): the checkpoint stays byte-identical
to the one written without it, `pdckpt verify` checks the sidecar, and every single-bit flip
(seeded; in headers and in data) of a combined file, a safetensors file and a .pdparams pickle is
detected, with the file, the offset of the 4 KiB block and (for tensor data) the tensor named."""
import json
import random
import re
import shutil
import struct
import subprocess

import pytest

from conftest import run_cli
from test_crash_consistency import SAVER

FLIPS = 40  # per format: 120 in all
FORMATS = ["model.pdiparams", "model.safetensors", "model.pdparams"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    src = tmp_path_factory.mktemp("src") / "vars"
    subprocess.run([str(SAVER), "varsdir", str(src), "A"], check=True, capture_output=True)
    return src


def safetensors_ranges(data):
    """{name: (start, end)} file offsets of each tensor's bytes, from the header."""
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    return {k: (8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
            for k, v in header.items() if k != "__metadata__"}


@pytest.mark.parametrize("name", FORMATS)
def test_sidecar_leaves_the_file_untouched_and_verifies(name, source, tmp_path):
    plain, summed = tmp_path / "plain", tmp_path / "summed"
    plain.mkdir()
    summed.mkdir()
    run_cli("convert", source, plain / name, check=0)
    run_cli("convert", source, summed / name, "--checksum", check=0)
    assert (plain / name).read_bytes() == (summed / name).read_bytes()
    assert not (plain / (name + ".xxh3")).exists()
    out = run_cli("verify", summed / name, check=0).stdout
    assert "xxh3 sidecar matches" in out
    # A later save without --checksum removes the sidecar that would describe the old file.
    run_cli("convert", source, summed / name, check=0)
    assert not (summed / (name + ".xxh3")).exists()
    assert "xxh3" not in run_cli("verify", summed / name, check=0).stdout


@pytest.mark.parametrize("name", FORMATS)
def test_every_bit_flip_is_detected(name, source, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    run_cli("convert", source, good / name, "--checksum", check=0)
    original = (good / name).read_bytes()
    sidecar = (good / (name + ".xxh3")).read_bytes()
    ranges = safetensors_ranges(original) if name.endswith(".safetensors") else {}
    rng = random.Random(f"flip-{name}")
    caught_by_format = 0
    for i in range(FLIPS):
        # Half the flips in the first 256 bytes (headers), half anywhere.
        pos = rng.randrange(min(256, len(original))) if i % 2 else rng.randrange(len(original))
        bit = rng.randrange(8)
        flipped = bytearray(original)
        flipped[pos] ^= 1 << bit
        trial = tmp_path / f"t{i}"
        trial.mkdir()
        (trial / name).write_bytes(flipped)
        (trial / (name + ".xxh3")).write_bytes(sidecar)
        proc = run_cli("verify", trial / name)
        assert proc.returncode != 0, f"flip of bit {bit} at byte {pos} not detected"
        msg = proc.stderr
        assert str(trial / name) in msg and "xxh3-128 of bytes" in msg, msg
        block = int(re.search(r"offset (\d+):", msg).group(1))
        assert block <= pos < block + 4096, (pos, msg)
        for tensor, (lo, hi) in ranges.items():
            if lo <= pos < hi:
                assert f"'{tensor}'" in msg, (pos, tensor, msg)
        # Without the sidecar, how many does the format's own structure catch?
        (trial / (name + ".xxh3")).unlink()
        caught_by_format += run_cli("verify", trial / name).returncode != 0
        shutil.rmtree(trial)
    print(f"{name}: {FLIPS} flips, {FLIPS} detected with the sidecar, "
          f"{caught_by_format} by the format checks alone")


def test_damaged_sidecar_is_reported(source, tmp_path):
    target = tmp_path / "model.safetensors"
    run_cli("convert", source, target, "--checksum", check=0)
    side = tmp_path / "model.safetensors.xxh3"
    lines = side.read_text().splitlines(keepends=True)
    side.write_text(lines[0] + lines[1].replace("block 4096", "block 8192") + "".join(lines[2:]))
    proc = run_cli("verify", target)
    assert proc.returncode != 0 and "4096-byte blocks" in proc.stderr, proc.stderr
    side.write_text("".join(lines[:-1]))  # one block line missing
    proc = run_cli("verify", target)
    assert proc.returncode != 0 and "block lines" in proc.stderr, proc.stderr


def test_huge_or_lying_sidecar_is_refused_before_it_is_read(source, tmp_path):
    """A sidecar is a header and 33 bytes per 4 KiB block of its file: a planted 1 TiB (sparse)
    one was read whole (an allocation of 1 TiB: "out of memory allocating file contents", naming
    no file); now it is sized first.  A size field of "-1" or of more digits than 2^64 has was
    wrapped by sscanf and reported as a file of 18446744073709551615 bytes."""
    target = tmp_path / "model.safetensors"
    run_cli("convert", source, target, "--checksum", check=0)
    side = tmp_path / "model.safetensors.xxh3"
    good = side.read_text()
    side.unlink()
    with open(side, "wb") as f:
        f.truncate(1 << 40)
    proc = run_cli("verify", target, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "model.safetensors.xxh3" in proc.stderr and "at most" in proc.stderr, proc.stderr
    lines = good.splitlines(keepends=True)
    size = lines[1].split()[1]
    for lie in ["-1", "99999999999999999999999", "+" + size, ""]:
        side.write_text(lines[0] + lines[1].replace(f"size {size} ", f"size {lie} ") +
                        "".join(lines[2:]))
        proc = run_cli("verify", target)
        assert proc.returncode == 1 and "4096-byte blocks" in proc.stderr, (lie, proc.stderr)
    side.write_text(good)
    run_cli("verify", target, check=0)


def test_a_sidecar_someone_else_could_write_is_not_trusted(source, tmp_path):
    """A planted sidecar cannot make a bad file pass, but it made `verify` call a good file
    corrupt (anyone who may create files beside it -- a sticky /tmp, a shared directory -- could
    plant one).  Now a link, another user's file (needs root: chown, as the tests run here) or
    one others may write is refused as an untrusted sidecar, not reported as corruption."""
    target = tmp_path / "model.safetensors"
    run_cli("convert", source, target, "--checksum", check=0)
    side = tmp_path / "model.safetensors.xxh3"
    good = side.read_bytes()
    side.write_bytes(good.replace(good[-33:-1], b"0" * 32))  # a lie about the last block
    side.chmod(0o646)
    proc = run_cli("verify", target)
    assert proc.returncode == 1 and "not trusted" in proc.stderr, proc.stderr
    assert "CORRUPT" not in proc.stderr and "says" not in proc.stderr, proc.stderr
    side.chmod(0o644)
    assert "says" in run_cli("verify", target).stderr  # the file's own sidecar: believed
    side.unlink()
    (tmp_path / "elsewhere").write_bytes(good)
    side.symlink_to(tmp_path / "elsewhere")
    proc = run_cli("verify", target)
    assert proc.returncode == 1 and "symbolic link" in proc.stderr, proc.stderr
    side.unlink()
    side.write_bytes(good)
    import os
    if os.geteuid() == 0:
        os.chown(side, 65534, 65534)
        proc = run_cli("verify", target)
        assert proc.returncode == 1 and "another user" in proc.stderr, proc.stderr
        os.chown(side, 0, 0)
    target.chmod(0o640)  # tightened after the save: the sidecar's group bits are not judged
    side.chmod(0o664)
    run_cli("verify", target, check=0)
