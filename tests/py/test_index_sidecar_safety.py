# SPDX-License-Identifier: Apache-2.0
"""The lazy-open index a save writes beside a pickle ("<file>.pdkidx") never replaces what the
save did not create: a symbolic link planted at its name is not written through (its target and
the link stay), a user's file or a FIFO there is left alone, and only an index of ours is
replaced.  (Found by trying it: the index used to follow a link and replaced its target.)"""

import os

import numpy as np
import pdckpt


def state():
    return {f"w{i}": np.full(300, i, np.float32) for i in range(40)}


def index_of(path):
    return str(path) + ".pdkidx"


def test_a_link_at_the_index_name_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    path = tmp_path / "m.pdparams"
    os.symlink(victim, index_of(path))
    pdckpt.save(state(), path)
    assert victim.read_text() == "precious\n"
    assert os.path.islink(index_of(path)) and os.readlink(index_of(path)) == str(victim)
    np.testing.assert_array_equal(pdckpt.open(path)["w7"], np.full(300, 7, np.float32))


def test_other_files_at_the_index_name_are_left_alone(tmp_path):
    path = tmp_path / "m.pdparams"
    with open(index_of(path), "w") as f:
        f.write("a user's notes\n")
    pdckpt.save(state(), path)
    assert open(index_of(path)).read() == "a user's notes\n"
    os.unlink(index_of(path))
    os.mkfifo(index_of(path))
    pdckpt.save(state(), path)  # returns: the FIFO is neither opened for writing nor replaced
    assert os.path.exists(index_of(path)) and not os.path.isfile(index_of(path))


def test_an_index_of_ours_is_replaced(tmp_path):
    path = tmp_path / "m.pdparams"
    pdckpt.save(state(), path)
    first = os.stat(index_of(path)).st_ino
    with open(index_of(path), "rb") as f:
        assert f.read(6) == b"PDKIDX"
    pdckpt.save(state(), path)
    assert os.stat(index_of(path)).st_ino != first  # renamed over, not written in place
    np.testing.assert_array_equal(pdckpt.open(path)["w3"], np.full(300, 3, np.float32))
