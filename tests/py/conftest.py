# SPDX-License-Identifier: Apache-2.0
"""Shared pytest fixtures: where the CLI, the build and the real Paddle fixtures are."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PDCKPT_BUILD", ROOT / "build"))
PDCKPT_BIN = Path(os.environ.get("PDCKPT_BIN", BUILD / "cli" / "pdckpt"))
SHARED = Path(os.environ.get("PDCKPT_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "real"
# The Python package built in-tree by scripts/build.sh (scripts/test.sh also sets PYTHONPATH).
PY_STAGE = BUILD / "python"
if str(PY_STAGE) not in sys.path:
    sys.path.insert(0, str(PY_STAGE))


def run_cli(*args, check=None, input=None, timeout=600):
    """Runs the pdckpt CLI; returns CompletedProcess (text).  check=rc asserts the exit code."""
    proc = subprocess.run([str(PDCKPT_BIN), *map(str, args)], capture_output=True, text=True,
                          input=input, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def old_paddle_venv(tag):
    """The venv of an older Paddle (tag "18" or "26"): PDCKPT_VENV_PADDLE<tag>, else the main
    venv's path + "-paddle<tag>" as scripts/setup.sh makes it."""
    env = os.environ.get(f"PDCKPT_VENV_PADDLE{tag}")
    if env:
        return Path(env)
    return Path(os.environ.get("PDCKPT_VENV", str(ROOT / ".venv")) + f"-paddle{tag}")


def old_paddle_python(tag):
    py = old_paddle_venv(tag) / "bin" / "python"
    assert py.exists(), f"Paddle venv {tag} missing at {py}: run scripts/setup.sh"
    return py


def run_old_paddle(tag, worker, *args, timeout=900):
    """Runs `worker` under that older Paddle (our build's PYTHONPATH cleared: it is another
    Python); fails the test with the worker's stderr."""
    proc = subprocess.run([str(old_paddle_python(tag)), str(worker), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def ls_json(path, *extra):
    proc = run_cli("ls", "--json", *extra, path, check=0)
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def cli():
    assert PDCKPT_BIN.exists(), f"build the CLI first: {PDCKPT_BIN}"
    return run_cli


@pytest.fixture(scope="session")
def fixtures_dir():
    assert FIXTURES.is_dir(), f"real Paddle fixtures not found at {FIXTURES} (set PDCKPT_SHARED)"
    return FIXTURES


@pytest.fixture(scope="session")
def paddle_np():
    """Real PaddlePaddle (CPU) and numpy, imported once per session."""
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import paddle

    paddle.set_device("cpu")
    return paddle, np
