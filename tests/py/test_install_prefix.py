# SPDX-License-Identifier: Apache-2.0
"""C packaging: `cmake --install` into a prefix chosen at install time, then moved elsewhere, still
serves C consumers through pkg-config and through find_package(pdckpt) (core without MPI, and
the `mpi` component), and the installed programs start without LD_LIBRARY_PATH."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, ROOT

CONSUMER_CMAKE = """cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(pdckpt REQUIRED {components})
add_executable(demo {demo})
target_link_libraries(demo PRIVATE {target} m)
"""


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    run(["cmake", "--install", BUILD, "--prefix", tmp / "first"])
    shutil.move(tmp / "first", tmp / "moved")  # relocatable: nothing may point at "first"
    return tmp / "moved"


def pc_dir(prefix):
    (pc,) = prefix.glob("**/pkgconfig/pdckpt.pc")
    return pc.parent


def test_pkg_config_consumer_after_move(prefix, tmp_path):
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc_dir(prefix)))
    cflags = run(["pkg-config", "--cflags", "pdckpt"], env=env).stdout.split()
    libs = run(["pkg-config", "--libs", "pdckpt"], env=env).stdout.split()
    assert os.path.normpath(next(f[2:] for f in cflags if f.startswith("-I"))) == \
        str(prefix / "include")
    libdir = os.path.normpath(next(f[2:] for f in libs if f.startswith("-L")))
    assert libdir.startswith(str(prefix))
    exe = tmp_path / "demo"
    run(["cc", "-std=c11", ROOT / "examples" / "demo.c", "-o", exe, *cflags, *libs,
         f"-Wl,-rpath,{libdir}", "-lm"])
    out = run([exe], cwd=tmp_path).stdout
    assert "built an MLP" in out, out


def test_mpi_pc_names_no_implementation(prefix):
    text = (pc_dir(prefix) / "pdckpt_mpi.pc").read_text()
    requires = [line for line in text.splitlines() if line.startswith("Requires")]
    assert requires == ["Requires: pdckpt"], requires


@pytest.mark.parametrize("with_mpi", [False, True], ids=["core-without-mpi", "mpi-component"])
def test_find_package_consumer(prefix, tmp_path, with_mpi):
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(CONSUMER_CMAKE.format(
        components="COMPONENTS mpi" if with_mpi else "",
        demo=(ROOT / "examples" / "demo.c").as_posix(),
        target="pdckpt::pdckpt pdckpt::pdckpt_mpi" if with_mpi else "pdckpt::pdckpt"))
    # Without the component, MPI must not even be looked for: forbid finding it.
    no_mpi = [] if with_mpi else ["-DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON"]
    run(["cmake", "-S", src, "-B", tmp_path / "b", f"-DCMAKE_PREFIX_PATH={prefix}", *no_mpi])
    run(["cmake", "--build", tmp_path / "b"])
    assert "built an MLP" in run([tmp_path / "b" / "demo"], cwd=tmp_path).stdout


def test_installed_programs_start_without_ld_library_path(prefix):
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    for name in ("pdckpt", "pdckpt-mpi"):
        exe = prefix / "bin" / name
        assert exe.exists(), exe
        proc = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode in (0, 2) and "error while loading" not in proc.stderr, proc.stderr
