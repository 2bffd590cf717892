# SPDX-License-Identifier: Apache-2.0
"""One rank of the 2-process Paddle job test_python_distributed.py launches with
`python -m paddle.distributed.launch --nproc_per_node 2` (Gloo on CPU).  Each scenario checks its
own values bit for bit and records the outcome in <out>/rank<R>.json; the test asserts on them.

  python dist_paddle_worker.py OUT_DIR
"""
import json
import os
import sys
import time
import traceback

import numpy as np

# name -> (dtype, global shape, how the saving job holds it)
SPECS = {
    "model.linear.w": ("float32", [7, 5], "row"),
    "model.emb": ("bfloat16", [6, 4], "row"),
    "model.bias": ("float64", [5], "plain"),      # a plain tensor on every rank: replicated
    "model.norm": ("float16", [3, 4], "rep"),     # a dist tensor placed Replicate
    "step": ("int64", [], "plain"),
    "opt.moment1": ("float32", [7, 5], "row"),
    "opt.master_weights.w": ("float32", [9, 3], "row"),
}


def full_tensors(paddle, seed):
    """The global tensors (the same on every rank and in the test process)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (dtype, shape, _) in SPECS.items():
        if dtype == "int64":
            arr = rng.integers(-2**40, 2**40, size=shape, dtype=np.int64)
            out[name] = paddle.to_tensor(arr)
        else:
            arr = rng.standard_normal(shape).astype(np.float32)
            out[name] = paddle.to_tensor(arr).astype(dtype)
    return out


def raw(t):
    """A tensor's bytes (bfloat16 as its bits, as Tensor.numpy() gives them)."""
    return np.ascontiguousarray(t.numpy()).tobytes()


def nest(flat):
    out = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def shard(dist, mesh, t, placements):
    """dist.shard_tensor; 16-bit floats through float32 (exact both ways), as Paddle's CPU slice
    kernel has no bfloat16."""
    import paddle

    if t.dtype in (paddle.bfloat16, paddle.float16):
        return dist.shard_tensor(t.astype("float32"), mesh, placements).astype(t.dtype)
    return dist.shard_tensor(t, mesh, placements)


def sharded_state(paddle, dist, mesh, full, layout):
    """The state dict as the job holds it: `layout` 'row' / 'col' shards 2-D tensors on dim 0 / 1;
    'plain' gives every rank plain tensors of the global shape."""
    flat = {}
    for name, (_, shape, how) in SPECS.items():
        t = full[name]
        if layout == "plain" or how == "plain":
            flat[name] = t.clone()
        elif how == "rep":
            flat[name] = shard(dist, mesh, t.clone(), [dist.Replicate()])
        else:
            dim = 1 if layout == "col" and len(shape) > 1 else 0
            flat[name] = shard(dist, mesh, t.clone(), [dist.Shard(dim)])
    return nest(flat)


def zeros_like_state(paddle, dist, mesh, full, layout):
    return sharded_state(paddle, dist, mesh, {k: paddle.zeros_like(v) for k, v in full.items()},
                         layout)


def flat(state, prefix=""):
    out = {}
    for k, v in state.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def local_expected(paddle, t, full):
    """The bytes of the piece of `full` this rank's tensor `t` holds."""
    if not t.is_dist():
        return raw(full)
    from paddle.distributed.flex_checkpoint.dcp.utils import compute_local_shape_and_global_offset
    if len(t.shape) == 0:
        return raw(full)
    shape, offset = compute_local_shape_and_global_offset(list(t.shape), t.process_mesh,
                                                          t.placements)
    box = tuple(slice(o, o + s) for o, s in zip(offset, shape))
    return np.ascontiguousarray(full.numpy()[box]).tobytes()


def matches(paddle, state, full):
    bad = []
    for name, t in flat(state).items():
        got = raw(t._local_value()) if t.is_dist() else raw(t)
        if got != local_expected(paddle, t, full[name]):
            bad.append(name)
    return bad


def main(out_dir):
    import warnings

    warnings.filterwarnings("ignore")
    import paddle
    import paddle.distributed as dist

    import pdckpt
    import pdckpt.distributed as pd

    paddle.set_device("cpu")
    dist.init_parallel_env()
    rank = dist.get_rank()
    mesh = dist.ProcessMesh([0, 1], dim_names=["x"])
    checks, times, notes = {}, {}, {}
    full = full_tensors(paddle, 5)
    full2 = full_tensors(paddle, 6)
    q, p = os.path.join(out_dir, "pdckpt_ck"), os.path.join(out_dir, "paddle_ck")

    def check(name, fn):
        try:
            checks[name] = fn()
        except Exception:  # recorded, the test prints it
            checks[name] = False
            notes[name] = traceback.format_exc()

    # Paddle's own save (the checkpoint pdckpt then loads), and pdckpt's, from row shards.
    dist.save_state_dict(sharded_state(paddle, dist, mesh, full, "row"), p)
    t0 = time.perf_counter()
    ident = pd.save_state_dict(sharded_state(paddle, dist, mesh, full, "row"), q)
    times["save"] = time.perf_counter() - t0
    checks["save_returns_id_0"] = ident == 0

    def reload(path, layout, fulls, **kw):
        target = zeros_like_state(paddle, dist, mesh, fulls, layout)
        t0 = time.perf_counter()
        pd.load_state_dict(target, path, **kw)
        times.setdefault("load_" + layout, time.perf_counter() - t0)
        bad = matches(paddle, target, fulls)
        if bad:
            notes[f"reload {path} {layout}"] = bad
        return not bad

    # the control: a target left at zeros matches nowhere
    check("control_zeros_do_not_match", lambda: len(matches(
        paddle, zeros_like_state(paddle, dist, mesh, full, "col"), full)) == len(SPECS))
    check("load_col_from_row", lambda: reload(q, "col", full))
    check("load_row_same_layout", lambda: reload(q, "row", full))
    check("load_plain_whole", lambda: reload(q, "plain", full))
    check("load_paddle_written_col", lambda: reload(p, "col", full))
    check("load_paddle_written_plain", lambda: reload(p, "plain", full))

    # Async: the snapshot is taken before save_state_dict returns; the tensors then change.
    def async_round():
        state = sharded_state(paddle, dist, mesh, full2, "row")
        t0 = time.perf_counter()
        handle = pd.save_state_dict(state, q, async_save=True)
        times["async_return"] = time.perf_counter() - t0
        for t in flat(state).values():
            local = t._local_value() if t.is_dist() else t
            paddle.assign(paddle.full_like(local, 3), local)
        ok = not handle.done and handle.id == 1
        ok = handle.wait() == 1 and handle.done and ok
        return ok and reload(q, "col", full2) and reload(q, "row", full, unique_id=0)

    check("async_save_wait_load", async_round)

    # A pending async save is committed by the next call (here a load) on every rank.
    def implicit_commit():
        handle = pd.save_state_dict(sharded_state(paddle, dist, mesh, full, "row"), q,
                                    async_save=True, unique_id=7)
        ok = reload(q, "col", full)  # loads id 7: the load waited for the commit first
        return ok and handle.done and handle.wait() == 7

    check("pending_async_committed_by_next_call", implicit_commit)

    # A failure on one rank is every rank's: rank 1 gives a value that is not a tensor.
    def agreed_failure():
        state = sharded_state(paddle, dist, mesh, full, "row")
        if rank == 1:
            state["model"]["bias"] = "not a tensor"
        before = sorted(os.listdir(q))
        try:
            pd.save_state_dict(state, q)
        except pdckpt.ArgumentError as e:
            notes["agreed_failure"] = str(e)
            return sorted(os.listdir(q)) == before and (rank == 1 or str(e).startswith("rank 1:"))
        return False

    check("failure_on_one_rank_raises_everywhere", agreed_failure)

    def arguments_differ():
        before = sorted(os.listdir(q))
        try:  # rank 1 asks for another id: refused before anything is written
            pd.save_state_dict(sharded_state(paddle, dist, mesh, full, "row"), q,
                               unique_id=8 + rank)
        except pdckpt.MismatchError as e:
            return sorted(os.listdir(q)) == before and str(e).startswith("rank 1:")
        return False

    check("arguments_differ_raise_everywhere", arguments_differ)

    def agreed_mismatch():
        target = zeros_like_state(paddle, dist, mesh, full, "row")
        if rank == 0:
            target["model"]["bias"] = paddle.zeros([6], dtype="float64")
        try:
            pd.load_state_dict(target, q)
        except pdckpt.MismatchError as e:
            notes["agreed_mismatch"] = str(e)
            return rank == 0 or str(e).startswith("rank 0:")
        return False

    check("load_mismatch_raises_everywhere", agreed_mismatch)
    # A sub-group (here rank 1 alone): data files are named by global rank, as Paddle's
    # save_state_dict names them (f"{paddle.distributed.get_rank()}_{unique_id}.distcp"), not by
    # the rank in the group.  (Paddle's own save cannot run here: its collectives refuse a
    # one-rank Gloo group, and a group of both ranks numbers them alike.)
    group = dist.new_group([1])
    sub_q = os.path.join(out_dir, "sub_pdckpt")

    def subgroup():
        ok = True
        if rank == 1:
            state = {"w": full["model.bias"].clone()}
            ok = pd.save_state_dict(state, sub_q, process_group=group, coordinator_rank=1) == 0
            target = {"w": paddle.zeros_like(state["w"])}
            pd.load_state_dict(target, sub_q, process_group=group, coordinator_rank=1)
            ok = ok and bool((target["w"] == state["w"]).all())
        dist.barrier()  # rank 0 looks only once rank 1's save has committed
        names = sorted(os.listdir(sub_q))
        notes["subgroup_files"] = names
        return ok and [n for n in names if n.endswith(".distcp")] == ["1_0.distcp"]

    check("subgroup_files_named_by_global_rank", subgroup)

    def refused(kw, words):
        try:
            if "aoa_config" in kw:
                pd.load_state_dict(zeros_like_state(paddle, dist, mesh, full, "row"), q, **kw)
            else:
                pd.save_state_dict(sharded_state(paddle, dist, mesh, full, "row"), q, **kw)
        except pdckpt.UnsupportedError as e:
            notes["refused " + next(iter(kw))] = str(e)
            return all(w in str(e) for w in words)
        return False

    check("save_replicas_refused_with_reason",
          lambda: refused({"save_replicas": True}, ["save_replicas", "replica_id"]))
    check("aoa_config_refused_with_reason",
          lambda: refused({"aoa_config": {"aoa_statements": ["a -> b"]}}, ["aoa_config"]))
    notes["times"] = times
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "checks": checks, "notes": notes}, f)


def die_mid_save(out_dir):
    """Saves id 0, then re-saves id 0 and rank 1 dies once its data file is written, before the
    commit: the job ends (the launcher stops the survivor) and id 0 must still be the first save."""
    import warnings

    warnings.filterwarnings("ignore")
    import paddle
    import paddle.distributed as dist

    import pdckpt.distributed as pd

    paddle.set_device("cpu")
    dist.init_parallel_env()
    mesh = dist.ProcessMesh([0, 1], dim_names=["x"])
    q = os.path.join(out_dir, "ck")
    pd.save_state_dict(sharded_state(paddle, dist, mesh, full_tensors(paddle, 5), "row"), q,
                       unique_id=0)
    if dist.get_rank() == 1:
        write = pd._native.sharded_write

        def write_then_die(*args):
            write(*args)
            os._exit(17)

        pd._native.sharded_write = write_then_die
    pd.save_state_dict(sharded_state(paddle, dist, mesh, full_tensors(paddle, 6), "row"), q,
                       unique_id=0)
    open(os.path.join(out_dir, f"survived{dist.get_rank()}"), "w").close()


if __name__ == "__main__":
    if sys.argv[2:] == ["die"]:
        die_mid_save(sys.argv[1])
    else:
        main(sys.argv[1])
