"""Packaging: `pip install .` builds a wheel holding the package and the extension (checked by
building it with the venv's scikit-build-core and importing it from the unpacked wheel alone),
and `import pdckpt` works in an interpreter where Paddle is genuinely not installed (the base
Python with nothing but NumPy on its path)."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np

import pdckpt

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


FROM_WHEEL = r"""
import sys
import numpy as np
import paddle
import pdckpt
assert pdckpt.__file__.startswith(sys.argv[1]), pdckpt.__file__
layer = paddle.nn.Linear(3, 2)
pdckpt.save(layer.state_dict(), sys.argv[2] + "/vars/", format="vars-dir")
out = pdckpt.load(sys.argv[2] + "/vars")
assert (out["weight"].numpy() == layer.weight.numpy()).all() and out["weight"].name == "weight"
print("ok")
"""


def test_pip_builds_an_importable_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
         "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("pdckpt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for must in ("pdckpt/__init__.py", "pdckpt/__init__.pyi", "pdckpt/py.typed",
                 "pdckpt/_convert.py", "pdckpt/_errors.py"):
        assert must in names
    assert any(n.startswith("pdckpt/_native.") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.endswith((".c", ".h"))], names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = dict(os.environ, PYTHONPATH=str(site))  # the wheel alone, not the in-tree build
    proc = subprocess.run([sys.executable, "-c", FROM_WHEEL, str(site), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
