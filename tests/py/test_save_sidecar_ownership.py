# SPDX-License-Identifier: Apache-2.0
"""What a save may delete or replace beside its file (found by trying it as an attacker would):

- the checksum sidecar's name ("<file>.xxh3"): every save used to unlink whatever was there (a
  user's file, a symbolic link) before renaming its file in, even a save without --checksum.
  Now only a sidecar of ours (a regular file starting "pdckpt-xxh3 ") is removed; anything else
  stays, and a --checksum save refuses before writing a byte (the old checkpoint is kept);
- temporaries of a killed save's sidecars (".<file>.pdkidx.pdckpt-tmp-<pid>-<hex>", the same for
  .xxh3) were never swept, because only the data file's own temporaries were; the next save now
  removes them (their writer is dead) -- and never a live writer's."""

import os
import subprocess
import sys

import numpy as np
import pdckpt
from conftest import run_cli


def state(n=40):
    return {f"w{i}": np.full(300, i, np.float32) for i in range(n)}


def test_a_users_file_or_link_at_the_sidecar_name_survives_saves(tmp_path):
    path = tmp_path / "m.pdparams"
    side = tmp_path / "m.pdparams.xxh3"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    side.write_text("my notes\n")
    pdckpt.save(state(), path)
    assert side.read_text() == "my notes\n"
    side.unlink()
    os.symlink(victim, side)
    run_cli("convert", path, path, check=0)  # no --checksum: the link is not ours, it stays
    assert os.path.islink(side) and os.readlink(side) == str(victim)
    assert victim.read_text() == "precious\n"


def test_a_checksum_save_refuses_a_foreign_sidecar_before_writing(tmp_path):
    src = tmp_path / "src.pdparams"
    pdckpt.save(state(3), src)
    out = tmp_path / "m.pdiparams"
    run_cli("convert", src, out, check=0)
    old = out.read_bytes()
    side = tmp_path / "m.pdiparams.xxh3"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for plant in ("file", "link", "fifo"):
        if plant == "file":
            side.write_text("my notes\n")
        elif plant == "link":
            os.symlink(victim, side)
        else:
            os.mkfifo(side)
        p = run_cli("convert", src, out, "--checksum", check=1)
        assert "is not a pdckpt checksum sidecar" in p.stderr and str(side) in p.stderr, p.stderr
        assert out.read_bytes() == old and victim.read_text() == "precious\n"
        assert os.path.lexists(side)
        assert sorted(os.listdir(tmp_path)) == ["m.pdiparams", "m.pdiparams.xxh3", "src.pdparams",
                                                "src.pdparams.pdkidx", "victim.txt"], plant
        if plant == "file":
            assert side.read_text() == "my notes\n"
        side.unlink()


def test_a_sidecar_of_ours_is_still_replaced_and_removed(tmp_path):
    src = tmp_path / "src.pdparams"
    pdckpt.save(state(3), src)
    out = tmp_path / "m.pdiparams"
    run_cli("convert", src, out, "--checksum", check=0)
    side = tmp_path / "m.pdiparams.xxh3"
    fresh = side.read_bytes()
    side.write_bytes(fresh + b"a line the next save must not keep\n")  # still ours: its header
    # (an inode number does not tell a new file: the old sidecar's, freed, is often reused)
    run_cli("convert", src, out, "--checksum", check=0)
    assert side.read_bytes() == fresh
    run_cli("verify", out, check=0)
    run_cli("convert", src, out, check=0)  # a save without checksum drops the stale sidecar
    assert not os.path.lexists(side)


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_killed_saves_sidecar_temporaries_are_swept_by_the_next_save(tmp_path):
    path = tmp_path / "m.pdparams"
    pid = dead_pid()
    debris = [tmp_path / f".m.pdparams.pdkidx.pdckpt-tmp-{pid}-0123456789abcdef",
              tmp_path / f".m.pdparams.xxh3.pdckpt-tmp-{pid}-0123456789abcdef"]
    live = tmp_path / f".m.pdparams.pdkidx.pdckpt-tmp-{os.getpid()}-0123456789abcdef"
    for d in debris + [live]:
        d.write_bytes(b"half an index")
    run_cli("convert", tmp_path / "none.pdparams", path, check=1)  # a failed save sweeps nothing
    assert all(d.exists() for d in debris)
    src = tmp_path / "src.pkl"
    pdckpt.save([np.zeros(3, np.float32), 5], src)
    run_cli("convert", src, path, check=0)  # a small list: a save that writes no index
    left = set(os.listdir(tmp_path)) - {"src.pkl", "src.pkl.pdkidx"}
    assert left == {"m.pdparams", live.name}, left


def _dist_gc_sweeps_dead_keeps_live(tmp_path, stem):
    """`pdckpt dist gc` of a sharded checkpoint beside a running writer's and a dead writer's
    temporary of `stem`: the running one's stays, the dead one's goes."""
    from test_dist import mpirun
    src = tmp_path / "src.safetensors"
    pdckpt.save({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(src))
    ck = tmp_path / "ck"
    mpirun(1, "dist", "shard", src, ck, "--ranks-layout", "row")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = ck / f".{stem}.pdckpt-tmp-{sleeper.pid}-0123456789abcdef"
        dead = ck / f".{stem}.pdckpt-tmp-{dead_pid()}-0123456789abcdef"
        live.write_bytes(b"being written")
        dead.write_bytes(b"left by a kill")
        run_cli("dist", "gc", ck, check=0)
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_dist_gc_leaves_a_running_saves_temporary_alone(tmp_path):
    """`pdckpt dist gc` (and every sharded save's sweep) removed every ".pdckpt-tmp-" entry of
    the directory, so a single-file save running beside the checkpoint lost its temporary and
    failed at its rename.  A temporary whose writer runs stays; a dead writer's goes."""
    _dist_gc_sweeps_dead_keeps_live(tmp_path, "extra.pdparams")


def test_dist_gc_sweeps_a_long_names_dead_temporary_and_keeps_a_live_ones(tmp_path):
    """(s11, pinned) A name within 37 bytes of NAME_MAX has temporaries named by its first 198
    bytes, '~' and a hash (pdk_temp_stem).  The sweep of a sharded directory (`dist gc`, every
    sharded save) takes any dead writer's temporary of this user, whatever its name, so those
    go too; a running writer's stays, long name or not."""
    _dist_gc_sweeps_dead_keeps_live(tmp_path, _temp_stem("m" * 246 + ".pdparams"))


def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path):
    """A writer killed with SIGKILL stays a zombie until its parent (or init) reaps it; its
    temporaries were kept as a live writer's, so a sharded save killed with its mpirun left them
    beside the checkpoint.  A zombie's temporary is swept, by the sharded sweep (`dist gc`) and
    by a single-file save's sweep alike."""
    import time

    import numpy as np
    from test_dist import mpirun
    src = tmp_path / "src.safetensors"
    pdckpt.save({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(src))
    ck = tmp_path / "ck"
    mpirun(1, "dist", "shard", src, ck, "--ranks-layout", "row")
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits; not waited for yet
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(f"/proc/{zombie.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        in_ck = ck / f".extra.pdparams.pdckpt-tmp-{zombie.pid}-0123456789abcdef"
        in_ck.write_bytes(b"left by a kill")
        run_cli("dist", "gc", ck, check=0)
        assert not in_ck.exists()
        beside = tmp_path / f".m.pdparams.pdckpt-tmp-{zombie.pid}-0123456789abcdef"
        beside.write_bytes(b"left by a kill")
        pdckpt.save({"w": np.zeros(3, np.float32)}, str(tmp_path / "m.pdparams"))
        assert not beside.exists()
    finally:
        zombie.wait()


def test_a_save_sweeps_no_temporary_of_a_longer_named_file(tmp_path):
    """A save of "m" swept ".m.pdparams.pdckpt-tmp-<pid>-..." (the sidecar rule read any
    ".<file>.<suffix>.pdckpt-tmp-" as its own): that is the temporary of "m.pdparams", a file this
    save does not write, perhaps by a writer whose pid this host cannot see (a container, NFS)."""
    pid = dead_pid()
    other = [tmp_path / f".m.pdparams.pdckpt-tmp-{pid}-0123456789abcdef",
             tmp_path / f".m.old.pdckpt-tmp-{pid}-0123456789abcdef"]
    own = tmp_path / f".m.pdkidx.pdckpt-tmp-{pid}-0123456789abcdef"
    for d in other + [own]:
        d.write_bytes(b"half a file")
    pdckpt.save(state(), tmp_path / "m", format="pickle")
    assert all(d.exists() for d in other)
    assert not own.exists()


def _temp_stem(name):
    """src/io/fs_util.c pdk_temp_stem: a name too long for ".<name>.pdckpt-tmp-<pid>-<16 hex>"
    within NAME_MAX (215 bytes) is its first 198 bytes, '~' and the FNV-1a of the whole name."""
    from flood_keys import fnv1a
    raw = name.encode()
    return name if len(raw) <= 215 else raw[:198].decode() + "~%016x" % fnv1a(raw)


def test_a_long_names_sidecar_temporaries_are_swept_too(tmp_path):
    """(s11) A long name's sidecar temporary carries the stem of "<name>.pdkidx" (its first bytes
    and a hash of the sidecar's whole name), not the data file's stem and the suffix: a kill
    during the index write of "<209 bytes>.pdparams" left one no later save removed.  Now swept
    under the same rules: a dead writer's only, and only those of this name's own sidecars."""
    pid = dead_pid()
    for base in ("m" * 200 + ".pdparams", "n" * 230 + ".pdparams"):  # index name hashed; both
        d = tmp_path / base[:1]
        d.mkdir()
        other = base[:-10] + "x.pdparams"  # the same first 198 bytes, another file
        debris = [f".{_temp_stem(base + side)}.pdckpt-tmp-{pid}-0123456789abcdef"
                  for side in (".pdkidx", ".xxh3")]
        kept = [f".{_temp_stem(base + '.pdkidx')}.pdckpt-tmp-{os.getpid()}-0123456789abcdef",
                f".{_temp_stem(other + '.pdkidx')}.pdckpt-tmp-{pid}-0123456789abcdef"]
        for name in debris + kept:
            (d / name).write_bytes(b"half an index")
        pdckpt.save(state(), str(d / base))
        assert (d / (base + ".pdkidx")).exists()  # (it writes an index: a kill can hit it)
        left = set(os.listdir(d)) - {base, base + ".pdkidx"}
        assert left == set(kept), left
