# SPDX-License-Identifier: Apache-2.0
"""The hostile pickle corpus (tests/py/hostile_pickles.py, issue 16): every pickle is refused by
`pdckpt verify`, `pdckpt ls`, `pdckpt convert` (no output file appears) and `pdckpt.load` (a
pdckpt.Error), with the error naming the file, the offset, the opcode and the global, and nothing
runs.  The payloads are real: a sample of them runs a command under Python's own pickle.  A class
allowed with --allow-global is carried as an inert object and written back by convert, while a
code-running global beside it is still refused."""
import collections
import pickle
import re
import subprocess
import sys
import types

import pytest

import hostile_pickles as hp
from conftest import PDCKPT_BIN, PY_STAGE, run_cli

import pdckpt  # noqa: E402  (conftest puts the staged package first on sys.path)

MARKER = "pwned"
CORPUS = hp.corpus(cmd=f"touch {MARKER}", marker=MARKER)
BY_NAME = {c.name: c for c in CORPUS}


def test_corpus_size():
    assert len(CORPUS) >= 300 and len(BY_NAME) == len(CORPUS)
    names = " ".join(BY_NAME)
    for spelling in ("dotted-codecs.builtins.exec", "dotted-logging.os.system", "_operator.",
                     "_functools.", "py2-StringIO.open", "pydoc.pipepager", "_ctypes.dlopen",
                     "numpy.ctypeslib.load_library", "logging.config.dictConfig", "numpy.save",
                     "paddle.framework.io.load", "inst_p0", "obj_p1", "newobj_build", "newobj_ex",
                     "reduce_p0", "stack_p5", "in_state_dict", "memo_trick", "memo-bomb"):
        assert spelling in names, spelling


def refusal(path, stderr, expect):
    m = re.match(rf"pdckpt: {re.escape(str(path))}: offset (\d+): ([A-Z_0-9]+): ", stderr)
    assert m, stderr
    assert expect in stderr, stderr
    return int(m.group(1))


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_refused_everywhere(tmp_path, name):
    case = BY_NAME[name]
    path = tmp_path / "in.pdparams"
    path.write_bytes(case.data)
    offsets = set()
    for cmd in ("verify", "ls"):
        proc = subprocess.run([str(PDCKPT_BIN), cmd, str(path)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 1, (cmd, proc.stdout)
        offsets.add(refusal(path, proc.stderr, case.expect))
    assert len(offsets) == 1 and 0 <= offsets.pop() < len(case.data)
    for out in ("out.pdparams", "out.safetensors"):
        proc = subprocess.run([str(PDCKPT_BIN), "convert", str(path),
                               str(tmp_path / out)], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
        assert proc.returncode == 1 and case.expect in proc.stderr, proc.stderr
        assert not (tmp_path / out).exists()
    with pytest.raises(pdckpt.Error, match=re.escape(case.expect)):
        pdckpt.load(path)
    with pytest.raises(pdckpt.Error):
        pdckpt.load(case.data, return_numpy=True)
    assert not (tmp_path / MARKER).exists()


# The payloads are not strawmen: these run a command under Python's pickle.  Each is written with
# its own marker and unpickled in a child process; every marker must appear.
PROVEN = [("posix", "system", hp.SHELL), ("subprocess", "getoutput", hp.SHELL),
          ("builtins", "exec", hp.CODE), ("cProfile", "run", hp.CODE)]
PROVEN_STRUCTURES = [hp.s_reduce_p0, hp.s_reduce_p2, hp.s_stack_p4, hp.s_stack_p5, hp.s_inst_p0,
                     hp.s_obj_p1, hp.s_in_state_dict_p2, hp.s_in_state_dict_p4,
                     hp.s_in_lr_scheduler, hp.s_memo_trick]

RUN_ALL = """
import os, pickle, sys
for p in sys.argv[1:]:
    try:
        pickle.load(open(p, 'rb'))
    except Exception:
        pass
"""


def test_payloads_run_under_python_and_not_under_pdckpt(tmp_path):
    files, markers = [], []
    for m, n, kind in PROVEN:
        for s in PROVEN_STRUCTURES:
            marker = tmp_path / f"marker-{len(files)}"
            data = s(m, n, hp.arg_for(kind, f"touch {marker}", str(marker)))
            path = tmp_path / f"p{len(files)}.pdparams"
            path.write_bytes(data)
            files.append(path)
            markers.append(marker)
    dotted = tmp_path / "marker-dotted"  # STACK_GLOBAL 'codecs' 'builtins.exec' (protocol 4)
    path = tmp_path / "dotted.pdparams"
    path.write_bytes(hp.proto(4) + hp.sglobal("codecs", "builtins.exec")
                     + hp.text(f"import os; os.system('touch {dotted}')") + b"\x85R.")
    files.append(path)
    markers.append(dotted)
    subprocess.run([sys.executable, "-c", RUN_ALL, *map(str, files)], cwd=tmp_path, timeout=120,
                   capture_output=True)
    assert [m.name for m in markers if not m.exists()] == []
    for m in markers:
        m.unlink()
    for path in files:
        for cmd in ("verify", "ls"):
            assert run_cli(cmd, path).returncode == 1
        assert run_cli("convert", path, tmp_path / "o.pdparams").returncode == 1
        with pytest.raises(pdckpt.Error):
            pdckpt.load(path)
    assert not any(m.exists() for m in markers) and not (tmp_path / "o.pdparams").exists()


def test_python2_renames_are_judged_after_renaming(tmp_path):
    """Every name CPython's protocol-0-2 loading renames (_compat_pickle) is refused unless what it
    names is on the allowlist (here: __builtin__ set/frozenset/bytearray ... and copy_reg)."""
    import _compat_pickle as cp
    accepted = {("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
                ("builtins", "tuple"), ("builtins", "list"), ("builtins", "range"),
                ("builtins", "int"), ("builtins", "str"),  # as values: defaultdict factories
                ("copyreg", "_reconstructor")}
    names = set(cp.NAME_MAPPING) | {(m, n) for m in cp.IMPORT_MAPPING
                                    for n in ("open", "system", "set", "_reconstructor", "load")}
    refused = 0
    for m, n in sorted(names):
        target = cp.NAME_MAPPING.get((m, n)) or (cp.IMPORT_MAPPING.get(m, m), n)
        data = hp.proto(2) + hp.gtext(m, n) + b"."
        try:
            pdckpt.load(data)
            ok = True
        except pdckpt.Error as e:
            ok = False
            assert f"refusing global {m}.{n}" in str(e) or "as a value" in str(e), str(e)
        if target in accepted and "." not in n and (m, n) != ("__builtin__", "basestring"):
            # (pdckpt renames __builtin__.unicode and .long, not .basestring: refused)
            assert ok, (m, n)
        else:
            assert not ok, (m, n, target)
            refused += 1
    assert refused > 100


# ---- explicitly allowed classes ----

@pytest.fixture()
def config_module():
    mod = types.ModuleType("pdckpt_user_cfg")

    class Config:
        def __init__(self, lr):
            self.lr, self.layers = lr, [1, 2]

    Config.__module__, Config.__qualname__ = mod.__name__, "Config"
    mod.Config = Config
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def test_allowed_class_round_trips_inert(tmp_path, config_module):
    allow = f"{config_module.__name__}.Config"
    state = collections.OrderedDict(w=[1.5], cfg=config_module.Config(0.1))
    src = tmp_path / "in.pdparams"
    src.write_bytes(pickle.dumps(dict(state), protocol=4))
    # not on the allowlist: refused
    proc = run_cli("verify", src)
    assert proc.returncode == 1 and f"refusing global {allow}: not on pdckpt's allowlist" in proc.stderr
    # allowed: listed as an inert object, converted, and the output is what Python wrote
    run_cli("verify", src, "--allow-global", allow, check=0)
    listing = run_cli("ls", src, "--allow-global", allow, check=0).stdout
    assert f"<object {allow}()" in listing
    out = tmp_path / "out.pdparams"
    proc = run_cli("convert", src, out, "--allow-global", allow, check=0)
    back = pickle.loads(out.read_bytes())
    assert type(back["cfg"]) is config_module.Config and back["cfg"].__dict__ == {"lr": 0.1, "layers": [1, 2]}
    assert out.read_bytes() == src.read_bytes()
    obj = pdckpt.load(src, allowed_globals=[allow])
    assert isinstance(obj["cfg"], pdckpt.OpaqueObject) and obj["cfg"].qualname == allow
    with pytest.raises(pdckpt.UnsupportedError, match=f"refusing to write global {allow}"):
        pdckpt.save(obj, tmp_path / "again.pdparams")
    pdckpt.save(obj, tmp_path / "again.pdparams", allowed_globals=[allow])
    assert pickle.loads((tmp_path / "again.pdparams").read_bytes())["cfg"].lr == 0.1
    with pytest.raises(TypeError):
        pdckpt.load(src, allowed_globals=allow)  # one str is not a list of names
    with pytest.raises(pdckpt.Error, match="not a name from builtins"):
        pdckpt.load(src, allowed_globals=["builtins.exec"])


def test_allowed_class_beside_a_code_runner_is_still_refused(tmp_path, config_module):
    allow = f"{config_module.__name__}.Config"
    cfg = pickle.dumps(config_module.Config(0.1), protocol=2)[2:-1]  # the object's opcodes
    src = tmp_path / "in.pdparams"
    src.write_bytes(hp.proto(2) + b"}(" + hp.utext("cfg") + cfg + hp.utext("run")
                    + hp.gtext("posix", "system") + hp.utext(f"touch {MARKER}") + b"\x85Ru.")
    for cmd in ("verify", "ls"):
        proc = run_cli(cmd, src, "--allow-global", allow)
        assert proc.returncode == 1 and "refusing global posix.system" in proc.stderr
    proc = run_cli("convert", src, tmp_path / "out.pdparams", "--allow-global", allow)
    assert proc.returncode == 1 and not (tmp_path / "out.pdparams").exists()
    with pytest.raises(pdckpt.UnsupportedError, match="refusing global posix.system"):
        pdckpt.load(src, allowed_globals=[allow])
    assert not (tmp_path / MARKER).exists()
    # and a builtin can never be allowed
    proc = run_cli("ls", src, "--allow-global", "builtins.exec")
    assert proc.returncode == 1 and "allowed global 'builtins.exec'" in proc.stderr


def test_real_fixture_pickles_load_and_convert_exactly(tmp_path, fixtures_dir):
    """Every pickle Paddle wrote in the shared fixtures passes the allowlist and converts back to
    a pickle that lists the same (tensor bytes by SHA-256, every other value)."""
    import json
    pickles = [p for p in sorted(fixtures_dir.rglob("*")) if p.is_file()
               and p.read_bytes()[:1] == b"\x80"]
    assert len(pickles) >= 10
    for i, p in enumerate(pickles):
        run_cli("verify", p, check=0)
        out = tmp_path / f"{i}.pdparams"
        run_cli("convert", p, out, "--protocol", "2" if b"_codecs" in p.read_bytes() else "4",
                check=0)
        a = json.loads(run_cli("ls", "--json", "--hash", p, check=0).stdout)
        b = json.loads(run_cli("ls", "--json", "--hash", out, check=0).stdout)
        assert (a["tensors"], a["scalars"]) == (b["tensors"], b["scalars"]), p
    assert PY_STAGE.exists()
