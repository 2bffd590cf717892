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
