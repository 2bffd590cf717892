# SPDX-License-Identifier: Apache-2.0
"""One rank of the real Paddle 3.x jobs test_paddle_sharded.py launches (`python -m
paddle.distributed.launch --nproc_per_node N`, Gloo on CPU).  Nothing here checks values: every
rank dumps what it holds -- each flat key's local value as a .npy (in a .npz per rank and tag) and
its box (global offset, local shape, global shape, flattened range) in a .json -- and the test
compares the dumps with each other and with what pdckpt reads.

  python paddle_sharded_worker.py OUT_DIR job     # 2 ranks: Paddle's save, pdckpt's loads and save
                                                  # (flattened pieces too), Paddle's loads of
                                                  # pdckpt's checkpoint
  python paddle_sharded_worker.py OUT_DIR load3 CK  # 3 ranks: pdckpt loads CK on a 3-rank mesh
  python paddle_sharded_worker.py OUT_DIR job4      # 4 ranks: blocks of a 2 x 2 mesh
"""
import json
import os
import sys
import traceback

import numpy as np

from dist_paddle_worker import flat  # a script beside this one: nested keys joined with "."

# flat key -> (dtype, global shape, how the job holds it):
#   S0 / S1 / R: a dist tensor on the 1-D mesh [0, 1], Shard(0) / Shard(1) / Replicate()
#   M12:a,b / M21:a,b: a dist tensor on the 2-D mesh [[0, 1]] / [[0], [1]] with placements a, b
#   plain: a plain tensor of the global shape on every rank
#   P1: a dist tensor on the mesh [1] (as pipeline stages hold theirs): rank 0 holds nothing
#   flat:s: a flattened ShardedWeight (sharding v2's: the whole box, rank 0 holds the row-major
#           run [0, s), rank 1 [s, numel)), made by hand: sharding v2 does not run on CPU
SPECS = {
    "model.w_row": ("float32", [7, 5], "S0"),
    "model.w_col": ("float32", [6, 5], "S1"),
    "model.bias": ("float64", [5], "R"),
    "model.emb": ("bfloat16", [6, 6], "S0"),
    "model.norm": ("float16", [6, 6], "S1"),
    "model.ids": ("int64", [5, 3], "S1"),
    "model.mask": ("bool", [4, 6], "S0"),
    "model.small": ("int32", [3], "plain"),
    "model.scale": ("float32", [], "R"),
    "step": ("int64", [], "plain"),
    "mesh.a": ("float32", [6, 4], "M12:S0,S1"),
    "mesh.b": ("float32", [6, 4], "M21:S0,S1"),
    "mesh.c": ("int64", [5, 4], "M21:S1,S0"),
    "mesh.d": ("bfloat16", [6, 6], "M12:R,S1"),
    "flat.m": ("float32", [5, 7], "flat:18"),
    "flat.v": ("float64", [3, 4, 5], "flat:27"),
    "pp.w": ("float32", [3, 4], "P1"),
    "big.w": ("float32", [300, 200], "S1"),   # pieces of 120 KB: payloads the skim jumps over
    "big.e": ("bfloat16", [258, 258], "S0"),
}
LAYOUTS = ("same", "swap", "rep", "plain", "swap_copy")  # swap_copy: mmap=False


def full_tensors(seed=7):
    """The synthetic global tensors, as numpy (bfloat16 as its float32 values, exact in bf16)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, (dtype, shape, _) in SPECS.items():
        if dtype == "bool":
            out[key] = rng.integers(0, 2, size=shape).astype(bool)
        elif dtype.startswith("int"):
            out[key] = rng.integers(-2**30, 2**30, size=shape).astype(dtype)
        else:  # values every float dtype holds exactly: k/8 for small k
            out[key] = (rng.integers(-200, 200, size=shape) / 8).astype("float32")
    return out


def _box(paddle, val):
    """(local value, {offset, shape, global_shape, flattened_range}) of a state-dict value."""
    from paddle.distributed.flex_checkpoint.dcp.utils import compute_local_shape_and_global_offset
    if isinstance(val, paddle.Tensor) and val.is_dist():
        gshape = list(val.shape)
        shape, off = (compute_local_shape_and_global_offset(gshape, val.process_mesh,
                                                            val.placements)
                      if gshape else ([], []))
        return val._local_value(), dict(offset=list(off), shape=list(shape), global_shape=gshape,
                                         flattened_range=None)
    if isinstance(val, paddle.Tensor):
        return val, dict(offset=[0] * len(val.shape), shape=list(val.shape),
                         global_shape=list(val.shape), flattened_range=None)
    fr = val.flattened_range
    return val.local_tensor, dict(offset=list(val.global_offset), shape=list(val.local_shape),
                                  global_shape=list(val.global_shape),
                                  flattened_range=[fr.start, fr.stop] if val.is_flattened else None)


def nest(flat_state):
    out = {}
    for key, value in flat_state.items():
        node = out
        *parents, leaf = key.split(".", 1) if key.count(".") else ("", key)
        for p in [p for p in parents if p]:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def dump(paddle, out_dir, tag, rank, state):
    """<out>/<tag>/r<rank>.npz (each flat key's local value) and .json (its box and dtype)."""
    os.makedirs(os.path.join(out_dir, tag), exist_ok=True)
    arrays, boxes = {}, {}
    for key, val in flat(state).items():
        if isinstance(val, paddle.Tensor) and not val._is_initialized():
            continue  # a dist tensor on a mesh without this rank
        local, box = _box(paddle, val)
        arrays[key] = np.ascontiguousarray(local.numpy())
        boxes[key] = dict(box, dtype=str(local.dtype).split(".")[-1])
    np.savez(os.path.join(out_dir, tag, f"r{rank}.npz"), **arrays)
    with open(os.path.join(out_dir, tag, f"r{rank}.json"), "w") as f:
        json.dump(boxes, f)


class Maker:
    """Builds dist tensors, ShardedWeights and plain tensors from global numpy values."""

    def __init__(self, paddle, dist, nranks):
        self.paddle, self.dist, self.n = paddle, dist, nranks
        self.mesh = dist.ProcessMesh(list(range(nranks)), dim_names=["x"])
        self.p1 = dist.ProcessMesh([1], dim_names=["x"])
        if nranks == 2:
            self.m12 = dist.ProcessMesh([[0, 1]], dim_names=["dp", "mp"])
            self.m21 = dist.ProcessMesh([[0], [1]], dim_names=["dp", "mp"])

    def place(self, name):
        d = self.dist
        return {"S0": d.Shard(0), "S1": d.Shard(1), "R": d.Replicate()}[name]

    def tensor(self, arr, dtype):
        return self.paddle.to_tensor(arr).astype(dtype)

    def dist_tensor(self, arr, dtype, mesh, placements):
        """16-bit floats are sharded as float32 and cast: Paddle's CPU slice kernel has neither
        bfloat16 nor float16 ("function "Slice" is not implemented for data type").  The cast
        of a tensor split unevenly on a 1-D mesh comes out Replicate (Paddle 3.3), so 16-bit
        shapes here split evenly; a cast that changed the placements fails the job."""
        wide = dtype in ("bfloat16", "float16")
        t = self.tensor(arr, "float32" if wide else dtype)
        t = self.dist.shard_tensor(t, mesh, placements)
        if wide:
            t = t.astype(dtype)
            assert str(t.placements) == str(placements), (dtype, arr.shape, t.placements)
        return t

    def flattened(self, key, arr, dtype, split, rank):
        from paddle.distributed.flex_checkpoint.dcp.sharded_weight import ShardedWeight
        n = int(np.prod(arr.shape))
        lo, hi = (0, split) if rank == 0 else (split, n)
        run = self.tensor(np.ascontiguousarray(arr.reshape(-1)[lo:hi]), dtype)
        return ShardedWeight(key, run, tuple(arr.shape), tuple(arr.shape), (0,) * arr.ndim,
                             is_flattened=True, flattened_range=slice(lo, hi))

    def build(self, key, arr, dtype, how, rank):
        if how == "plain":
            return self.tensor(arr, dtype)
        if how.startswith("flat:"):
            return self.flattened(key, arr, dtype, int(how[5:]), rank)
        if how == "P1":
            return self.dist_tensor(arr, dtype, self.p1, [self.place("R")])
        if how.startswith("M"):
            mesh = self.m12 if how.startswith("M12") else self.m21
            return self.dist_tensor(arr, dtype, mesh, [self.place(p) for p in how[4:].split(",")])
        return self.dist_tensor(arr, dtype, self.mesh, [self.place(how)])


def retarget(how, ndim, layout, n):
    """The placement a target of `layout` gives a value the job holds as `how`."""
    if layout == "same":
        return how
    if layout == "swap_copy":
        layout = "swap"
    if layout == "plain":
        return "plain"
    if layout == "rep" or ndim == 0:
        return "R"
    if how == "P1":
        return "S0"
    if how.startswith("flat:"):  # another split point, crossing rows differently
        return f"flat:{int(how[5:]) - 11}" if n == 2 else "S0"
    if how.startswith("M"):      # the placements reversed
        return how[:4] + ",".join(reversed(how[4:].split(",")))
    return {"S0": "S1" if ndim > 1 else "R", "S1": "S0", "R": "S0", "plain": "S0"}[how]


def state_of(mk, values, layout, rank, zeros=False):
    out = {}
    for key, (dtype, shape, how) in SPECS.items():
        arr = np.zeros(shape, dtype="float32" if dtype == "bfloat16" else dtype) if zeros \
            else values[key]
        out[key] = mk.build(key, arr, dtype, retarget(how, len(shape), layout, mk.n), rank)
    return nest(out)


def trained_states(paddle, dist, mk):
    """Real Paddle optimizer states: (a) auto-parallel AdamW (dist.shard_optimizer) over a Linear
    whose weight is Shard(1) and bias Shard(0); (b) fleet sharding stage 1 (DygraphShardingOptimizer,
    sharding_degree 2): model.sharded_state_dict() (every rank the whole parameters) and
    opt.sharded_state_dict() (each rank the states of its own parameters, whole)."""
    from paddle.distributed import fleet
    paddle.seed(3)
    lin = paddle.nn.Linear(4, 6)
    lin.weight = dist.shard_tensor(lin.weight, mk.mesh, [dist.Shard(1)])
    lin.bias = dist.shard_tensor(lin.bias, mk.mesh, [dist.Shard(0)])
    opt = dist.shard_optimizer(paddle.optimizer.AdamW(parameters=lin.parameters(),
                                                      learning_rate=0.1))
    x = dist.shard_tensor(paddle.ones([3, 4]), mk.mesh, [dist.Replicate()])
    lin(x).sum().backward()
    opt.step()
    ap = {"model": lin.state_dict(), "opt": opt.state_dict()}
    model = paddle.nn.Sequential(paddle.nn.Linear(5, 7), paddle.nn.Linear(7, 3))
    sopt = paddle.optimizer.AdamW(parameters=model.parameters(), learning_rate=0.1)
    model, sopt = fleet.distributed_model(model), fleet.distributed_optimizer(sopt)
    model(paddle.ones([4, 5])).sum().backward()
    sopt.step()
    msd = model.sharded_state_dict()
    return {"ap": ap, "s1": {"model": msd, "opt": sopt.sharded_state_dict(msd)}}


def zeros_like(paddle, dist, mk, state):
    """The same structure, every local value zeroed (the same placements and boxes)."""
    from paddle.distributed.flex_checkpoint.dcp.sharded_weight import ShardedWeight
    out = {}
    for key, val in flat(state).items():
        if isinstance(val, ShardedWeight):
            out[key] = ShardedWeight(key, paddle.zeros_like(val.local_tensor), val.local_shape,
                                     val.global_shape, val.global_offset)
        elif val.is_dist():
            out[key] = dist.shard_tensor(paddle.zeros(val.shape, val.dtype), val.process_mesh,
                                         val.placements)
        else:
            out[key] = paddle.zeros_like(val)
    return {k: v for k, v in out.items()}


def outcome(fn):
    try:
        fn()
        return "ok"
    except Exception as e:  # recorded for the test
        return f"{type(e).__name__}: {e}"


def job(out_dir):
    import paddle
    import paddle.distributed as dist
    from paddle.distributed import fleet

    import pdckpt.distributed as pd

    paddle.set_device("cpu")
    strategy = fleet.DistributedStrategy()
    strategy.hybrid_configs = {"dp_degree": 1, "mp_degree": 1, "pp_degree": 1,
                               "sharding_degree": 2}
    fleet.init(is_collective=True, strategy=strategy)
    rank = dist.get_rank()
    mk = Maker(paddle, dist, 2)
    values, notes = full_tensors(), {}
    held = state_of(mk, values, "same", rank)
    trained = trained_states(paddle, dist, mk)
    p_ck, q_ck = os.path.join(out_dir, "paddle_ck"), os.path.join(out_dir, "pdckpt_ck")
    t_ck = os.path.join(out_dir, "paddle_trained")
    dist.save_state_dict(held, p_ck)
    dist.save_state_dict(trained, t_ck)
    for name, kw in (("replicas", {"save_replicas": True}), ("safetensors", {"safetensors": True}),
                     ("id3", {"unique_id": 3})):
        dist.save_state_dict(held, os.path.join(out_dir, "paddle_" + name), **kw)
    dist.barrier()  # Paddle's save returns once this rank's file is written: wait for all
    dump(paddle, out_dir, "held", rank, held)
    dump(paddle, out_dir, "trained", rank, trained)
    for layout in LAYOUTS:  # pdckpt loads Paddle's checkpoint into every layout
        target = state_of(mk, values, layout, rank, zeros=True)
        notes["pdckpt_load_" + layout] = outcome(lambda: pd.load_state_dict(
            target, p_ck, mmap=layout != "swap_copy"))
        dump(paddle, out_dir, "load_" + layout, rank, target)
    target = zeros_like(paddle, dist, mk, trained)
    notes["pdckpt_load_trained"] = outcome(lambda: pd.load_state_dict(target, t_ck))
    dump(paddle, out_dir, "load_trained", rank, target)
    # the reverse: pdckpt saves the same states, flattened pieces too; Paddle loads them in this
    # job where Paddle can on CPU, and pdckpt into the other layouts
    unflat = {k for k, (_, _, how) in SPECS.items() if not how.startswith("flat:")}
    flats = set(SPECS) - unflat

    def some(layout, keys, zeros=False):
        return {k: v for k, v in flat(state_of(mk, values, layout, rank, zeros)).items()
                if k in keys}

    notes["pdckpt_save"] = outcome(lambda: pd.save_state_dict(held, q_ck))
    notes["pdckpt_save_trained"] = outcome(lambda: pd.save_state_dict(
        trained, os.path.join(out_dir, "pdckpt_trained")))
    for layout in ("swap", "rep"):  # pdckpt reads its own flattened pieces into other layouts
        target = state_of(mk, values, layout, rank, zeros=True)
        notes["pdckpt_reload_" + layout] = outcome(lambda: pd.load_state_dict(target, q_ck))
        dump(paddle, out_dir, "reload_" + layout, rank, target)
    sharded = {k for k, (_, s, how) in SPECS.items() if how[0] in "SM" and s}
    for name, ck in (("paddle", p_ck), ("pdckpt", q_ck)):
        target = some("same", sharded, zeros=True)
        notes[f"paddle_load_{name}_sharded"] = outcome(lambda: dist.load_state_dict(target, ck))
        dump(paddle, out_dir, f"paddle_load_{name}", rank, target)
        target = some("same", flats, zeros=True)  # ShardedWeights only: Paddle mixes none
        notes[f"paddle_load_{name}_flat"] = outcome(lambda: dist.load_state_dict(target, ck))
        dump(paddle, out_dir, f"paddle_load_{name}_flat", rank, target)
        target = some("swap", unflat, zeros=True)
        notes[f"paddle_load_{name}_swap"] = outcome(lambda: dist.load_state_dict(target, ck))
        target = some("swap", flats, zeros=True)  # the flattened pieces into other runs
        notes[f"paddle_load_{name}_flat_swap"] = outcome(lambda: dist.load_state_dict(target, ck))
        target = some("rep", flats, zeros=True)  # ... and into replicated dist tensors
        notes[f"paddle_load_{name}_flat_rep"] = outcome(lambda: dist.load_state_dict(target, ck))
    stage3(paddle, dist, pd, mk, values, rank, out_dir, notes)
    # one tensor dim sharded over both mesh dims: neither Paddle's save nor pdckpt's places it
    co = {"co": mk.dist_tensor(np.ones([4, 2], "float32"), "float32", mk.m21,
                               [dist.Shard(0), dist.Shard(0)])}
    notes["paddle_save_coshard"] = outcome(lambda: dist.save_state_dict(
        co, os.path.join(out_dir, "co_paddle")))
    notes["pdckpt_save_coshard"] = outcome(lambda: pd.save_state_dict(
        co, os.path.join(out_dir, "co_pdckpt")))
    with open(os.path.join(out_dir, f"notes{rank}.json"), "w") as f:
        json.dump(notes, f)


def stage3(paddle, dist, pd, mk, values, rank, out_dir, notes):
    """A parameter as sharding stage 3 flattens it when the last rank falls in the padding:
    rank 0 holds the run [0, 35) of flat.m, rank 1 the empty run [35, 35).  Paddle and pdckpt
    save it; the test loads both checkpoints."""
    from paddle.distributed.flex_checkpoint.dcp.sharded_weight import ShardedWeight
    arr = values["flat.m"]
    lo, hi = (0, arr.size) if rank == 0 else (arr.size, arr.size)
    run = mk.tensor(np.ascontiguousarray(arr.reshape(-1)[lo:hi]), "float32")
    state = {"s3.w": ShardedWeight("s3.w", run, arr.shape, arr.shape, (0, 0), is_flattened=True,
                                   flattened_range=slice(lo, hi))}
    dist.save_state_dict(state, os.path.join(out_dir, "paddle_s3"))
    notes["pdckpt_save_s3"] = outcome(lambda: pd.save_state_dict(
        state, os.path.join(out_dir, "pdckpt_s3")))
    dist.barrier()


def load3(out_dir, ck):
    """3 ranks: pdckpt loads the 2-rank job's checkpoint into 3-way layouts."""
    import paddle
    import paddle.distributed as dist

    import pdckpt.distributed as pd

    paddle.set_device("cpu")
    dist.init_parallel_env()
    rank = dist.get_rank()
    mk = Maker(paddle, dist, 3)
    values, notes = full_tensors(), {}
    two_d = {k for k, (_, _, how) in SPECS.items() if how.startswith("M")}
    for layout in ("same3", "swap"):
        state = {}
        for key, (dtype, shape, how) in SPECS.items():
            how = "S0" if key in two_d else how
            if layout == "swap":
                how = retarget(how, len(shape), "swap", 3)
            elif how.startswith("flat:"):
                how = "S1"
            arr = np.zeros(shape, dtype="float32" if dtype == "bfloat16" else dtype)
            state[key] = mk.build(key, arr, dtype, how, rank)
        notes["pdckpt_load3_" + layout] = outcome(lambda: pd.load_state_dict(state, ck))
        dump(paddle, out_dir, "load3_" + layout, rank, state)
    with open(os.path.join(out_dir, f"notes3_{rank}.json"), "w") as f:
        json.dump(notes, f)


# 4 ranks on the 2-D mesh [[0, 1], [2, 3]]: key -> (dtype, global shape, placements)
BLOCKS = {
    "blk.a": ("float32", [7, 5], "S0,S1"),   # a 2 x 2 grid of uneven blocks
    "blk.b": ("int64", [6, 9], "S1,S0"),
    "blk.c": ("float64", [5, 4], "R,S0"),    # rows over the second mesh dim, twice stored
    "blk.d": ("bfloat16", [6, 6], "S0,R"),
    "blk.e": ("bool", [4, 6], "S1,S1"),      # one dim over both mesh dims: Paddle cannot save it
}


def job4(out_dir):
    """4 ranks: Paddle saves block-sharded tensors of a 2 x 2 mesh; pdckpt loads them into the
    transposed placements; every rank dumps both."""
    import paddle
    import paddle.distributed as dist

    import pdckpt.distributed as pd

    paddle.set_device("cpu")
    dist.init_parallel_env()
    rank = dist.get_rank()
    mk = Maker(paddle, dist, 4)
    grid = dist.ProcessMesh([[0, 1], [2, 3]], dim_names=["dp", "mp"])
    rng = np.random.default_rng(11)
    notes = {}

    def state(zeros, transpose):
        out = {}
        for key, (dtype, shape, how) in BLOCKS.items():
            if key == "blk.e":
                continue
            arr = np.zeros(shape, "float32") if zeros else full[key]
            names = how.split(",")[::-1] if transpose else how.split(",")
            out[key] = mk.dist_tensor(arr, dtype, grid, [mk.place(n) for n in names])
        return out

    full = {k: (rng.integers(-99, 99, size=s) / 4).astype("float32") if d != "bool" else
            rng.integers(0, 2, size=s).astype(bool) for k, (d, s, _) in BLOCKS.items()}
    held = state(False, False)
    ck = os.path.join(out_dir, "paddle_blocks")
    dist.save_state_dict(held, ck)
    dist.barrier()  # Paddle's save returns once this rank's file is written: wait for all
    dump(paddle, out_dir, "blocks_held", rank, held)
    target = state(True, True)
    notes["pdckpt_load_transposed"] = outcome(lambda: pd.load_state_dict(target, ck))
    dump(paddle, out_dir, "blocks_transposed", rank, target)
    notes["pdckpt_save"] = outcome(lambda: pd.save_state_dict(
        held, os.path.join(out_dir, "pdckpt_blocks")))
    dist.barrier()
    # Paddle's load of pdckpt's blocks where it can on CPU: every piece in this rank's own file
    target = {k: v for k, v in state(True, False).items() if k in ("blk.a", "blk.b")}
    notes["paddle_load_pdckpt"] = outcome(lambda: dist.load_state_dict(
        target, os.path.join(out_dir, "pdckpt_blocks")))
    dump(paddle, out_dir, "blocks_paddle_load", rank, target)
    co = {"blk.e": mk.dist_tensor(full["blk.e"], "bool", grid, [dist.Shard(1), dist.Shard(1)])}
    notes["paddle_save_coshard"] = outcome(lambda: dist.save_state_dict(
        co, os.path.join(out_dir, "co4")))
    with open(os.path.join(out_dir, f"notes4_{rank}.json"), "w") as f:
        json.dump(notes, f)


def job_empty(out_dir):
    """2 ranks: an empty piece on rank 0 ("e": its one row is rank 1's) before two replicated
    tensors, then rows, columns, a replicated dist tensor and flattened runs, in another key
    order on rank 1 ("e" last), saved by Paddle's save_state_dict and by pdckpt's."""
    import paddle
    import paddle.distributed as dist
    from paddle.distributed.flex_checkpoint.dcp.sharded_weight import ShardedWeight

    import pdckpt.distributed as pd

    paddle.set_device("cpu")
    dist.init_parallel_env()
    rank = dist.get_rank()
    row = paddle.to_tensor(np.arange(4, dtype="float32").reshape(1, 4))
    e = (ShardedWeight("e", paddle.zeros([0, 4], "float32"), (0, 4), (1, 4), (1, 0)) if rank == 0
         else ShardedWeight("e", row, (1, 4), (1, 4), (0, 0)))
    mesh = dist.ProcessMesh([0, 1])
    grid = paddle.to_tensor(np.arange(56, dtype="float32").reshape(7, 8))
    lo, hi = ((0, 18), (18, 35))[rank]
    run = paddle.to_tensor(np.arange(lo, hi, dtype="float32"))
    state = {"e": e, "r": paddle.arange(3, dtype="float32"),
             "r2": paddle.arange(2, dtype="float32") + 5,
             "rows": dist.shard_tensor(grid, mesh, [dist.Shard(0)]),
             "cols": dist.shard_tensor(grid, mesh, [dist.Shard(1)]),
             "rep": dist.shard_tensor(grid, mesh, [dist.Replicate()]),
             "f": ShardedWeight("f", run, (5, 7), (5, 7), (0, 0), is_flattened=True,
                                flattened_range=slice(lo, hi))}
    if rank == 1:
        state = {k: state[k] for k in ("cols", "r", "f", "rows", "r2", "rep", "e")}
    dist.save_state_dict(state, os.path.join(out_dir, "paddle_empty"))
    dist.barrier()
    pd.save_state_dict(state, os.path.join(out_dir, "pdckpt_empty"))
    dist.barrier()


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    try:
        if sys.argv[2] == "job":
            job(sys.argv[1])
        elif sys.argv[2] == "job4":
            job4(sys.argv[1])
        elif sys.argv[2] == "job_empty":
            job_empty(sys.argv[1])
        else:
            load3(sys.argv[1], sys.argv[3])
    except Exception:
        traceback.print_exc()
        sys.exit(3)
