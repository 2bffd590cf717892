# SPDX-License-Identifier: Apache-2.0
"""The README and every task page (docs/tasks/*.md) run as written.

Each fenced block is one of:
  ```sh / ```python                 run in order, in one empty directory per page, with the built
                                    `pdckpt` first on PATH (its MPI twin beside it), the venv's
                                    `python`, the built package importable, $PDCKPT_BUILD set and
                                    `build` linked to it (the README is read from the checkout);
  ```LANG title="NAME"              written to NAME in that directory (a C file, a CMakeLists.txt,
                                    a script) for the blocks after it to compile or run;
  ```text / ```console / ```json    a listing (synopsis or output), not run: it may not hold a
                                    `$ ` command line, so no example hides as a listing;
  <!-- docs-test: skip: REASON -->  on the line before a block: not run here, for the stated
                                    reason (the test that covers it instead).
Any other block fails the test: a C snippet must be a complete file that a later block builds.
A block that fails fails the test with its code and output."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUILD, PDCKPT_BIN, PY_STAGE, ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "tasks").glob("*.md"))]
FENCE = re.compile(r"^```([\w+-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
SKIP = re.compile(r"<!-- docs-test: skip: (\S.*?) -->\s*$")
TITLE = re.compile(r'\btitle="([\w.+-]+)"')
RUN = ("sh", "python")
LISTING = ("text", "console", "json")


def blocks(page):
    """(kind, lang, code, name) of every fenced block in order; kind is run, file, listing or skip."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        lang, attrs, code = m.groups()
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        title = TITLE.search(attrs)
        if SKIP.search(before):
            out.append(("skip", lang, code, SKIP.search(before).group(1)))
        elif title:
            out.append(("file", lang, code, title.group(1)))
        elif lang in RUN:
            out.append(("run", lang, code, None))
        elif lang in LISTING:
            out.append(("listing", lang, code, None))
        else:
            pytest.fail(f"{page.name}: a ```{lang} block that is neither run, a titled file nor a "
                        f"listing:\n{code}")
    return out


def page_env(tmp_path):
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(PDCKPT_BIN.parent), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PY_STAGE), env.get("PYTHONPATH")]))
    env["PDCKPT_BUILD"] = str(BUILD.resolve())
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    (tmp_path / "build").symlink_to(BUILD.resolve(), target_is_directory=True)
    return env


def test_pages_exist_and_have_code():
    names = {p.name for p in PAGES}
    assert {"README.md", "huggingface.md", "c-inference.md", "resume-training.md",
            "sharded.md"} <= names, names
    for page in PAGES:
        assert any(kind == "run" for kind, *_ in blocks(page)), f"{page} has no runnable block"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_listings_hold_no_commands(page):
    for kind, lang, code, _ in blocks(page):
        if kind == "listing":
            assert not re.search(r"^\$ ", code, re.M), f"{page.name}: a command in a listing:\n{code}"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_runs_as_written(tmp_path, page):
    env = page_env(tmp_path)
    for i, (kind, lang, code, name) in enumerate(blocks(page)):
        if kind == "file":
            (tmp_path / name).write_text(code)
        if kind != "run":
            continue
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, (f"{page.name} block {i + 1} ({lang}) failed:\n{code}\n"
                                      f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")


def test_readme_first_commands(tmp_path):
    """The README's first block (`./run.sh demo`, `./run.sh test`) is skipped above: `./run.sh
    test` is the command running this test.  Check that run.sh sends both where the README says
    (set-up, build, then the demo or the tests) and run the demo's own step on this build."""
    (kind, _, code, _), *_ = blocks(ROOT / "README.md")
    assert kind == "skip" and code.split("\n")[:2] == [
        "./run.sh demo    # set up (apt + venv), build, save/list/verify/reload a real checkpoint",
        "./run.sh test    # set up, build (plain + ASan/UBSan), run every test"], code
    run_sh = (ROOT / "run.sh").read_text()
    assert re.search(r"^\s*demo\)\s+scripts/setup.sh && scripts/build.sh && scripts/demo.sh", run_sh, re.M)
    assert re.search(r"^\s*test\)\s+scripts/setup.sh && scripts/build.sh && scripts/test.sh", run_sh, re.M)
    env = dict(os.environ, PDCKPT_BUILD=str(BUILD.resolve()), PDCKPT_BIN=str(PDCKPT_BIN),
               PDCKPT_VENV=str(Path(sys.executable).parent.parent))
    proc = subprocess.run(["bash", ROOT / "scripts" / "demo.sh", tmp_path / "demo"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("demo: OK"), (proc.stdout,
                                                                                 proc.stderr)


@pytest.mark.parametrize("page", PAGES + sorted((ROOT / "docs").glob("*.md")),
                         ids=lambda p: p.stem)
def test_relative_links_resolve(page):
    """The README was split into docs/ pages: every relative link (and its #anchor) must land."""
    def anchors(md):
        heads = re.findall(r"^#+ (.*)$", md.read_text(), re.M)
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}

    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"\w+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.name}: no heading for {target}"
