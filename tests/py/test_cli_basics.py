# SPDX-License-Identifier: Apache-2.0
"""CLI conventions: exit codes (0 ok, 1 bad input or difference, 2 usage) and the error line
format "pdckpt: <file>: offset N: <message>"."""
import struct


def test_usage_errors_exit_2(cli, tmp_path):
    assert cli().returncode == 2
    assert cli("frobnicate").returncode == 2
    assert cli("ls").returncode == 2
    assert cli("ls", "--format", "zip", tmp_path).returncode == 2
    assert cli("convert", "a").returncode == 2
    assert cli("ls", "--bogus", tmp_path).returncode == 2
    assert cli("--help").returncode == 0


def test_missing_file_exits_1_and_names_it(cli, tmp_path):
    missing = tmp_path / "nope.pdiparams"
    proc = cli("ls", missing)
    assert proc.returncode == 1
    assert proc.stderr == f"pdckpt: {missing}: stat: No such file or directory\n"


def test_bad_input_error_line(cli, tmp_path):
    bad = tmp_path / "w"
    bad.write_bytes(struct.pack("<IQ", 7, 0))
    proc = cli("verify", "--format", "tensor", bad)
    assert proc.returncode == 1
    assert proc.stderr == f"pdckpt: {bad}: offset 0: expected tensor stream version 0, found 7\n"
