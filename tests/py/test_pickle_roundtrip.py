# SPDX-License-Identifier: Apache-2.0
"""Reader and writer together on values Paddle's files rarely hold: ints beyond 64 bits, which the
reader carries as builtins.int objects (pickle's own bytes) and the writer gives back as
LONG1/LONG4 exactly as CPython writes them.  (Fixture round trips and the training resume test:
test_resume_fixture_roundtrip.py, test_resume_training.py.)"""
import pickle

import pytest

from conftest import run_cli


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_ints_beyond_64_bits_are_written_back_as_longs(tmp_path, protocol):
    obj = {"ids": {2**64 + i: -2**70 - i for i in range(3)}, "huge": 3**700, "edge": -2**63 - 1}
    src = tmp_path / "ints.pkl"
    src.write_bytes(pickle.dumps(obj, protocol=protocol))
    run_cli("convert", src, tmp_path / "out.pkl", "--to", "pickle", "--protocol", protocol,
            check=0)
    assert (tmp_path / "out.pkl").read_bytes() == src.read_bytes()
