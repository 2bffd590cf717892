# SPDX-License-Identifier: Apache-2.0
"""Packaging: scripts/wheel.sh builds a binary wheel that carries the package, the extension, the
command-line tool and the shared libraries they need (installed into a clean venv and run with
the system's copies of those libraries hidden), and `import pdckpt` works in an interpreter where Paddle is genuinely not installed (the base
Python with nothing but NumPy on its path)."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import pdckpt
from conftest import PDCKPT_BIN

ROOT = Path(__file__).resolve().parents[2]

NO_PADDLE = r"""
import sys
import numpy as np
import pdckpt
assert "paddle" not in sys.modules, "import pdckpt imported paddle"
try:
    import paddle
except ImportError:
    pass
else:
    raise SystemExit("paddle is importable: this check would prove nothing")
path = sys.argv[1]
state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, np.int64)}
pdckpt.save(state, path)
out = pdckpt.load(path)  # no Paddle: NumPy arrays, as with return_numpy=True
assert sorted(out) == ["b", "w"] and all(type(v) is np.ndarray for v in out.values())
assert (out["w"] == state["w"]).all()
pdckpt.load(path, exact_dtypes=True)  # no bfloat16/float8 here: ml_dtypes is not needed
bf16 = pdckpt.load(sys.argv[2], return_numpy=True)["h"]  # raw bits without ml_dtypes
assert bf16.dtype == np.uint16 and bf16.tolist() == [0x3F80, 0x4000]
try:
    pdckpt.load(sys.argv[2], exact_dtypes=True)
except ImportError as e:
    assert "ml_dtypes" in str(e)
else:
    raise SystemExit("exact_dtypes=True without ml_dtypes should say so")
assert "paddle" not in sys.modules
print("ok", pdckpt.__file__)
"""


def test_import_without_paddle(tmp_path):
    # A directory with NumPy alone, for the venv's base interpreter (same Python version).
    site = tmp_path / "site"
    site.mkdir()
    numpy_dir = Path(np.__file__).parent
    for entry in (numpy_dir, numpy_dir.parent / "numpy.libs"):
        if entry.exists():
            (site / entry.name).symlink_to(entry)
    base_python = getattr(sys, "_base_executable", sys.executable)
    stage = next(p for p in sys.path if (Path(p) / "pdckpt" / "__init__.py").exists())
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{site}{os.pathsep}{stage}"}
    half = tmp_path / "half.safetensors"  # bfloat16 [1.0, 2.0], written here with ml_dtypes
    pdckpt.save({"h": np.array([1.0, 2.0], dtype=ml_dtypes.bfloat16)}, half)
    proc = subprocess.run([base_python, "-s", "-c", NO_PADDLE, str(tmp_path / "m.safetensors"),
                           str(half)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ")


# The system copies of what the wheel bundles, hidden in a private mount namespace: a program that
# still needed them fails to start ("file too short"), one that uses the bundled copies runs.
HIDE_SYSTEM_LIBS = r"""
set -e
for lib in libxxhash.so.0 libprotobuf-c.so.1 libjansson.so.4 libcrypto.so.3; do
  for dir in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib /lib; do
    [ -e "$dir/$lib" ] && mount --bind /dev/null "$dir/$lib"
  done
done
mount -t tmpfs none /usr/include   # no -dev package's headers either
exec "$@"
"""

WHEEL_SMOKE = r"""
import sys
import numpy as np
import pdckpt
assert pdckpt.__file__.startswith(sys.argv[1]), pdckpt.__file__
path = sys.argv[2] + "/w.pdparams"
pdckpt.save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, path)
assert pdckpt.load(path)["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
print("ok")
"""


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory):
    """The repaired binary wheel (scripts/wheel.sh) installed into a new venv holding nothing
    else; NumPy is lent to it from the test venv through a .pth file, so no network is needed."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(["bash", str(ROOT / "scripts" / "wheel.sh"), str(tmp / "dist")],
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp / "dist").glob("pdckpt-*-manylinux_*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("pdckpt/__init__.py", "pdckpt/__init__.pyi", "pdckpt/py.typed",
                 "pdckpt/_convert.py", "pdckpt/__main__.py", "pdckpt/_bin/pdckpt"):
        assert must in names
    assert any(n.startswith("pdckpt/_native.") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.endswith((".c", ".h"))], names
    bundled = {Path(n).name.split("-")[0] for n in names if n.startswith("pdckpt.libs/")}
    assert bundled >= {"libxxhash", "libprotobuf", "libjansson", "libcrypto"}, names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    venv = tmp / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--no-deps",
                    str(wheel)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "lend_numpy.pth").write_text(str(Path(np.__file__).parent.parent) + "\n")
    return venv, site


def test_wheel_runs_without_system_libraries(clean_venv, tmp_path):
    venv, site = clean_venv
    # a private mount namespace: root's own, or (another user) one inside a user namespace
    ns = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    hide = ["unshare", *ns, "bash", "-c", HIDE_SYSTEM_LIBS, "hide"]
    control = subprocess.run(hide + [str(PDCKPT_BIN), "--version"],
                             capture_output=True, text=True, timeout=60)
    # the build's CLI fails for want of a library, not because the namespace could not be made
    assert control.returncode != 0 and "error while loading shared libraries" in control.stderr, (
        "hiding the system libraries had no effect: proves nothing", control.stderr)
    proc = subprocess.run(hide + [str(venv / "bin" / "python"), "-I", "-c", WHEEL_SMOKE,
                                  str(site), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
    tool = subprocess.run(hide + [str(site / "pdckpt" / "_bin" / "pdckpt"), "ls", "--json",
                                  str(tmp_path / "w.pdparams")],
                          capture_output=True, text=True, timeout=60)
    assert tool.returncode == 0, tool.stderr
    assert '"float32"' in tool.stdout and '[2, 3]' in tool.stdout


def test_console_command_and_python_m(clean_venv, tmp_path):
    venv, site = clean_venv
    path = tmp_path / "v.safetensors"
    import pdckpt

    pdckpt.save({"v": np.ones(4, np.int64)}, path)
    env = {"PATH": os.environ.get("PATH", "")}  # nothing from the test venv or the build
    script = subprocess.run([str(venv / "bin" / "pdckpt"), "verify", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert script.returncode == 0, script.stdout + script.stderr
    module = subprocess.run([str(venv / "bin" / "python"), "-m", "pdckpt", "ls", str(path)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert module.returncode == 0 and "int64" in module.stdout, module.stdout + module.stderr
    bad = subprocess.run([str(venv / "bin" / "python"), "-m", "pdckpt", "ls",
                          str(tmp_path / "missing")], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "missing" in bad.stderr
