# SPDX-License-Identifier: Apache-2.0
"""The command line as users of GNU tools expect it: every command has --help (and `pdckpt help
CMD` prints the same), `--opt=value` and `--opt value` are the same, options may follow operands,
`--` ends the options, invalid values list the valid ones, text output uses human sizes while
--json keeps bytes, and the completion scripts and the man page come from the same table."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import pdckpt
from conftest import PDCKPT_BIN, run_cli

COMMANDS = ["ls", "verify", "convert", "diff", "check", "stats", "formats", "help", "completion"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    own = run_cli(command, "--help", check=0).stdout
    assert own.startswith(f"usage: pdckpt {command}") and "-h, --help" in own
    assert run_cli("help", command, check=0).stdout == own
    assert run_cli(command, "-h", check=0).stdout == own


def test_top_level_help_lists_every_command_and_format():
    text = run_cli("--help", check=0).stdout
    for command in COMMANDS + ["dist", "version"]:
        assert re.search(rf"^  {command} ", text, re.M), command
    for name in pdckpt.formats():
        if pdckpt.formats()[name][0]:
            assert name in text.split("Formats read:")[1].splitlines()[0]
    assert run_cli("help", check=0).stdout == text


@pytest.fixture()
def ckpt(tmp_path):
    path = tmp_path / "m.pdparams"
    pdckpt.save({"w": np.ones((512, 1024), np.float32), "b": np.zeros(3, np.int64)}, path)
    return path


def test_option_spellings_and_order(ckpt, tmp_path, monkeypatch):
    a = run_cli("ls", "--format", "pickle", "--json", ckpt, check=0).stdout
    assert run_cli("ls", "--format=pickle", "--json", ckpt, check=0).stdout == a
    assert run_cli("ls", ckpt, "--json", "--format=pickle", check=0).stdout == a
    dashed = tmp_path / "-odd.pdparams"
    shutil.copy(ckpt, dashed)
    monkeypatch.chdir(tmp_path)  # the next tests start where this one did
    assert json.loads(run_cli("ls", "--json", "--", "-odd.pdparams", check=0).stdout)["tensors"]
    assert "unknown option '-o'" in run_cli("ls", "-odd.pdparams", check=2).stderr


def test_usage_errors_say_what_and_where_help_is(ckpt, tmp_path):
    err = run_cli("convert", ckpt, tmp_path / "x", "--to=gguf", check=2).stderr
    assert "invalid value 'gguf' for --to; expected one of:" in err and "safetensors" in err
    assert "pickle" in run_cli("ls", "--format", "nope", ckpt, check=2).stderr
    err = run_cli("ls", "--frobnicate", ckpt, check=2).stderr
    assert "unknown option '--frobnicate'" in err and "Try 'pdckpt ls --help'" in err
    assert "needs a value" in run_cli("ls", ckpt, "--names", check=2).stderr
    assert "takes no value" in run_cli("ls", "--json=yes", ckpt, check=2).stderr
    assert "unexpected argument" in run_cli("verify", ckpt, ckpt, check=2).stderr
    assert "expected one of: 2, 3, 4" in run_cli("convert", ckpt, tmp_path / "y.pdparams",
                                                  "--protocol=5", check=2).stderr


def test_human_sizes_in_text_bytes_in_json(ckpt):
    text = run_cli("ls", ckpt, check=0).stdout
    assert "2.00 MiB" in text and "24 B" in text  # 512*1024*4 bytes, 3 int64
    doc = json.loads(run_cli("ls", "--json", ckpt, check=0).stdout)
    assert sorted(t["nbytes"] for t in doc["tensors"]) == [24, 2 << 20]
    assert "2.00 MiB of tensor data" in run_cli("verify", ckpt, check=0).stdout


def test_bash_completion_from_the_table(tmp_path):
    script = run_cli("completion", "bash", check=0).stdout
    probe = script + r"""
complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _pdckpt; echo "${COMPREPLY[*]}"; }
complete_words pdckpt co
complete_words pdckpt convert --to=x --sk
complete_words pdckpt ls --format saf
"""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "convert completion", "--skip-non-tensors", "safetensors safetensors-sharded"]


def test_zsh_completion_loads(tmp_path):
    script = tmp_path / "c.zsh"
    script.write_text(run_cli("completion", "zsh", check=0).stdout)
    proc = subprocess.run(["zsh", "-f", "-c", f"source {script} && whence -w _pdckpt"],
                          capture_output=True, text=True, env={"HOME": str(tmp_path),
                                                               "PATH": os.environ["PATH"]})
    assert proc.returncode == 0 and "_pdckpt: function" in proc.stdout, proc.stderr


def test_man_page_renders_and_matches_the_help():
    roff = run_cli("help", "--man", check=0).stdout
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww"], input=roff, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    page = re.sub(r".\x08", "", proc.stdout).replace("\u2010", "-").replace("\u2212", "-")
    for command in COMMANDS:
        assert f"pdckpt {command}" in page, command
    assert "--skip-non-tensors" in page
    built = PDCKPT_BIN.parent / "pdckpt.1"  # the build's copy, installed to man1
    assert built.read_text() == roff


@pytest.mark.parametrize("sub", ["shard", "merge", "gc"])
def test_distributed_commands_follow_the_same_conventions(sub, tmp_path):
    top = run_cli("dist", "--help", check=0).stdout
    assert f"  {sub} " in top and run_cli("help", "dist", check=0).stdout == top
    own = run_cli("dist", sub, "--help", check=0).stdout
    assert own.startswith(f"usage: pdckpt dist {sub}") and "-h, --help" in own
    err = run_cli("dist", sub, "--frobnicate", tmp_path, check=2).stderr
    assert "unknown option '--frobnicate'" in err and f"Try 'pdckpt dist {sub} --help'" in err
    if sub == "gc":
        assert "expected a count of at least 1" in run_cli("dist", "gc", tmp_path, "--keep=0",
                                                           check=2).stderr


# Every command, with an operand that looks like an option after `--` and with its value-taking
# options spelled `--opt=value`: (arguments after the command, the exit code expected).
def _dashed_cases(a, b, out):
    return {
        "ls": (["--format=pickle", "--json", "--", a], 0),
        "verify": (["--from=pickle", "--", a], 0),
        "convert": (["--to=safetensors", "--protocol=4", "--", a, out], 0),
        "diff": (["--format=pickle", "--", a, b], 1),
        "check": (["--format=pickle", "--json", "--", a, b], 1),
        "stats": (["--format=pickle", "--json", "--", a], 0),
        "formats": (["--"], 0),
        "help": (["--", "ls"], 0),
        "completion": (["--", "bash"], 0),
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_double_dash_and_opt_equals_value(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pdckpt.save({"w": np.ones(3, np.float32), "v": np.zeros(2, np.int64)}, "-a.pdparams")
    pdckpt.save({"w": np.ones(3, np.float32)}, "-b.pdparams")
    args, rc = _dashed_cases("-a.pdparams", "-b.pdparams", "-out.safetensors")[command]
    proc = run_cli(command, *args, check=rc)
    assert proc.stdout
    if command in ("ls", "check", "stats"):
        json.loads(proc.stdout)
    if command == "convert":
        assert list(pdckpt.load("-out.safetensors", return_numpy=True)) == ["w", "v"]
    if command == "help":
        assert proc.stdout == run_cli("ls", "--help", check=0).stdout
    without = [x for x in args if x != "--"]  # the dashed operand is now an unknown option
    if any(x.startswith("-") and not x.startswith("--") for x in without):
        assert "unknown option '-" in run_cli(command, *without, check=2).stderr


ODD = ["tab\there", "nl\nx", 'q"uo\\te', "ctl\x01\x1f\x7f", "größe", "emoji\U0001F600"]


def test_json_output_quotes_every_name(tmp_path):
    """Names with control bytes, quotes, DEL and non-ASCII come back from every --json listing as
    they were saved; control bytes are written \\u00xx (the CLI's spelling since its first day)."""
    sd = {name: np.full(2, i, np.float32) for i, name in enumerate(ODD)}
    sd["note"] = 'line\n"two"\t\\'
    a, b = tmp_path / "a.pdparams", tmp_path / "b.pdparams"
    pdckpt.save(sd, a)
    pdckpt.save({k: v for k, v in sd.items() if k != ODD[0]}, b)
    out = run_cli("ls", "--json", a, check=0).stdout
    doc = json.loads(out)
    assert [t["key"] for t in doc["tensors"]] == [[name] for name in ODD]
    assert doc["scalars"] == [{"key": ["note"], "value": sd["note"]}]
    assert '["tab\\u0009here"]' in out and '["größe"]' in out
    stats = json.loads(run_cli("stats", "--json", a, check=0).stdout)
    assert [t["key"] for t in stats["tensors"]] == [[name] for name in ODD]
    report = json.loads(run_cli("check", "--json", a, b, check=1).stdout)
    assert [(i["kind"], i["name"]) for i in report["issues"]] == [("missing", ODD[0])]
