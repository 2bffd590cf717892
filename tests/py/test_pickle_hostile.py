# SPDX-License-Identifier: Apache-2.0
"""Hostile pickles: payloads that really run a command under Python's pickle (shown first, in a
child process) are refused by pdckpt with a clear error naming the file, the offset, the opcode
and the global (off the allowlist, or on it only in another structure), and nothing runs (the marker file the payload would create never appears).  Memo bombs,
deep nesting and sizes declared beyond the file end in clear errors too.  Every prefix of a real
Paddle pickle is rejected cleanly."""
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli


def payloads(cmd):
    """(name, pickle bytes, the global pdckpt must name) for ways to run `cmd`."""

    class System:
        def __reduce__(self):
            return (os.system, (cmd,))

    class Eval:
        def __reduce__(self):
            return (eval, (f"__import__('os').system({cmd!r})",))

    class Exec:
        def __reduce__(self):
            return (exec, (f"import os; os.system({cmd!r})",))

    class Call:
        def __reduce__(self):
            return (subprocess.call, (["sh", "-c", cmd],))

    class Reconstructor:  # copyreg._reconstructor(Popen, Popen, args) runs Popen.__init__
        def __reduce__(self):
            import copyreg
            return (copyreg._reconstructor, (subprocess.Popen, subprocess.Popen, ["sh", "-c", cmd]))

    sysname = os.system.__module__  # 'posix' on Linux
    out = []
    for proto in (0, 2, 4):
        out.append((f"system-p{proto}", pickle.dumps(System(), protocol=proto),
                    f"global {sysname}.system"))
    # eval is on the allowlist only as Paddle's DenseTensor form: refused at the call
    out.append(("eval", pickle.dumps(Eval(), protocol=2), "to call builtins.eval"))
    out.append(("exec", pickle.dumps(Exec(), protocol=4), "global builtins.exec"))
    out.append(("subprocess", pickle.dumps(Call(), protocol=3), "global subprocess.call"))
    # (protocol 2 spells subprocess as Python 2's commands, which CPython maps back when loading)
    out.append(("reconstructor", pickle.dumps(Reconstructor(), protocol=2),
                "global commands.Popen"))
    # a real-looking state dict with the payload as one more value
    sd = {"linear_0.w_0": np.ones((2, 2), dtype="float32"), "epoch": System()}
    out.append(("in-state-dict", pickle.dumps(sd, protocol=2), f"global {sysname}.system"))
    # a getattr gadget: getattr(__import__('os'), 'system')(cmd), Python 2 names
    gadget = (b"\x80\x02c__builtin__\ngetattr\nc__builtin__\n__import__\nX\x02\x00\x00\x00os\x85R"
              b"X\x06\x00\x00\x00system\x86R" + b"X" + len(cmd).to_bytes(4, "little") + cmd.encode()
              + b"\x85R.")
    out.append(("getattr-gadget", gadget, "global __builtin__.getattr (builtins.getattr)"))
    return out


def runs_under_python(data, cwd):
    path = cwd / "payload.pkl"
    path.write_bytes(data)
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(open(sys.argv[1],'rb')"
                    ".read())", str(path)], cwd=cwd, capture_output=True, timeout=60)
    path.unlink()


@pytest.mark.parametrize("case", range(len(payloads("true"))))
def test_code_running_pickles_are_refused(tmp_path, case):
    marker = tmp_path / "pwned"
    name, data, glob = payloads(f"touch {marker}")[case]
    # The payload is real: Python's pickle runs it.
    runs_under_python(data, tmp_path)
    assert marker.exists(), f"{name}: the payload did not run under Python"
    marker.unlink()
    path = tmp_path / f"{name}.pdparams"
    path.write_bytes(data)
    for cmd in ("ls", "verify"):
        proc = run_cli(cmd, path)
        assert proc.returncode == 1
        m = re.match(rf"pdckpt: {re.escape(str(path))}: offset (\d+): ([A-Z_]+): refusing "
                     rf"{re.escape(glob)}: ", proc.stderr)
        assert m, proc.stderr
        # the offset is the opcode named: the one naming the global, or the refused call
        op = data[int(m.group(1))]
        assert op == {"GLOBAL": ord("c"), "STACK_GLOBAL": 0x93, "INST": ord("i"),
                      "REDUCE": ord("R")}[m.group(2)]
    out = tmp_path / "out.safetensors"
    assert run_cli("convert", path, out).returncode == 1
    assert not marker.exists() and not out.exists()


def test_memo_bomb(tmp_path):
    """Each level is [prev, prev]: 2**64 values once expanded, from a 0.5 KB file."""
    body = bytearray(b"\x80\x02K\x01q\x00")
    for level in range(1, 64):
        body += b"](h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"eq" + bytes([level])
    body += b"."
    path = tmp_path / "bomb.pkl"
    path.write_bytes(bytes(body))
    proc = run_cli("ls", path, timeout=30)
    assert proc.returncode == 1
    assert "once shared (memo) references are expanded (max_alloc_bytes / 16), found more" in proc.stderr


def test_deep_nesting(tmp_path):
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".")
    proc = run_cli("ls", path, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.endswith("APPEND: expected nesting of at most 200 levels (max_depth), found deeper\n")


@pytest.mark.parametrize("data,message", [
    (b"\x80\x04\x8d" + (1 << 50).to_bytes(8, "little") + b"x.",
     "offset 2: BINUNICODE8: expected 1125899906842624 bytes of text, found 2 before the end"),
    (b"\x80\x02T\xff\xff\xff\x7fab.", "offset 2: BINSTRING: expected 2147483647 bytes of string, found 3"),
    (b"\x80\x04\x96" + (1 << 63).to_bytes(8, "little") + b".",
     "offset 2: BYTEARRAY8: expected 9223372036854775808 bytes of bytes, found 1"),
    (b"\x80\x02\x8b\x00\x00\x00\x40.", "offset 2: LONG4: expected 1073741824 bytes of integer, found 1"),
])
def test_sizes_declared_beyond_the_file(tmp_path, data, message):
    path = tmp_path / "big.pkl"
    path.write_bytes(data)
    proc = run_cli("verify", path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"pdckpt: {path}: {message}")


@pytest.mark.parametrize("protocol", [2, 4])
def test_every_prefix_of_a_paddle_pickle(tmp_path, protocol):
    import paddle
    paddle.seed(1)
    sd = paddle.nn.Linear(3, 2).state_dict()
    whole = tmp_path / "w.pdparams"
    paddle.save(sd, str(whole), protocol=protocol)
    data = whole.read_bytes()
    run_cli("verify", whole, check=0)
    for n in range(len(data)):
        path = tmp_path / f"p{n}"
        path.write_bytes(data[:n])
        proc = run_cli("verify", "--format", "pickle", path, timeout=20)
        assert proc.returncode == 1, n
        m = re.match(rf"pdckpt: {re.escape(str(path))}: offset (\d+): ", proc.stderr)
        assert m and int(m.group(1)) <= n, (n, proc.stderr)
        path.unlink()
    shutil.rmtree(tmp_path, ignore_errors=True)
