"""Every task page (docs/tasks/*.md) runs as written: its ```sh and ```python blocks are executed
in order in an empty directory, with the built `pdckpt` CLI first on PATH, the venv's `python`
and the built package importable.  A block that fails fails the test with its output."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PDCKPT_BIN, PY_STAGE, ROOT

PAGES = sorted((ROOT / "docs" / "tasks").glob("*.md"))
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(page):
    """(language, code) of every fenced block, in order; other languages are illustrations."""
    return [(lang, code) for lang, code in FENCE.findall(page.read_text())
            if lang in ("sh", "python")]


def test_pages_exist_and_have_code():
    assert [p.name for p in PAGES if p.name == "huggingface.md"] == ["huggingface.md"]
    for page in PAGES:
        assert blocks(page), f"{page} has no runnable block"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_runs_as_written(tmp_path, page):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(PDCKPT_BIN.parent), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PY_STAGE), env.get("PYTHONPATH")]))
    for i, (lang, code) in enumerate(blocks(page)):
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, (f"{page.name} block {i + 1} ({lang}) failed:\n{code}\n"
                                      f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
