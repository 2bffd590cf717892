# SPDX-License-Identifier: Apache-2.0
"""Complexity attacks (docs/RELIABILITY.md, "Complexity attacks"): small, well-formed files
crafted so that a linear-looking load goes quadratic.  Each case builds its file here (no
committed binaries) at a size where the quadratic code took a minute or more on the 2-core CI
machine and the fixed code takes a second or two; the bound is a subprocess timeout, generous
enough for a loaded machine, that the old code could not meet."""
import subprocess

import flood_keys
from conftest import run_cli

HANG = 25  # seconds: the fixed loads below take 1-3 s, the old ones 60 s and more


def test_sharded_metadata_with_keys_crafted_to_collide(tmp_path):
    """50,000 keys whose unseeded FNV-1a hashes share their low 24 bits put every key of the
    metadata index (and every piece of the (key, offset) table) in one cluster: `pdckpt verify`
    took ~60 s here (37.6 s at 40,000 keys, 8.8 s at 20,000) before the tables were seeded per
    process.  The load is also checked to be right, not only quick."""
    keys = flood_keys.colliding_keys(50_000)
    assert len({flood_keys.fnv1a(k.encode()) & 0xFFFFFF for k in keys}) == 1  # they do collide
    flood_keys.write_checkpoint(tmp_path / "ck", keys)
    try:
        proc = run_cli("verify", tmp_path / "ck", timeout=HANG)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"pdckpt verify of 50,000 colliding keys took over {HANG} s")
    assert proc.returncode == 0, proc.stderr
    import pdckpt
    out = pdckpt.load(str(tmp_path / "ck"), return_numpy=True)
    assert len(out) == len(keys)
    assert [float(out[k][0]) for k in (keys[0], keys[-1])] == [0.0, len(keys) - 1]
