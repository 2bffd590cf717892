# SPDX-License-Identifier: Apache-2.0
"""Issue 19 item 5: paddle.distributed.save(opt_state, path, gather_to=T, state_type="opt") done
by pdckpt (pdckpt_mpi_save under mpirun, tests/support/gather_tool.c) equals what Paddle's own
_gather_state_dict and paddle.save make of the same per-rank sharding states, key for key:
values, key order, tensor names and the StructuredToParameterName@@ table (the union of the
ranks', not the last rank's), master_weights merged, and LR_Scheduler only the writer's own
(Paddle omits it when the writer has none); and when every rank has the same keys,
paddle.distributed.save gathers nothing and writes the writer's own state, so does pdckpt.

The per-rank states are real Paddle optimizer state dicts split the way sharding splits them
(each rank holds the accumulators, and master weights, of the parameters it owns), written with
paddle.save.  Paddle's side runs the real _gather_state_dict of the venv's Paddle, one thread per
rank, with all_gather_object / get_rank / get_world_size standing in for a process group (AMP
O2 training, which makes master weights, and multi-process CPU collectives do not run here;
the master weights are therefore real fp32 copies named as Paddle names them)."""
import pickle
import subprocess
import threading
import warnings

import numpy as np
import pytest

from conftest import BUILD

warnings.filterwarnings("ignore")
import paddle  # noqa: E402
import paddle.distributed as dist  # noqa: E402
from paddle.incubate.distributed.utils.io import dist_save  # noqa: E402

from test_dist import MPI_ENV  # noqa: E402

RANKS = 4
TOOL = BUILD / "tests" / "pdckpt_gather_tool"
NUMPY_MODULE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


def _full_state(amp):
    """A real AdamW state (moments, beta powers, LR_Scheduler) of 4 parameters after 2 steps."""
    paddle.seed(7)
    with paddle.utils.unique_name.guard():
        net = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2))
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=1)
    opt = paddle.optimizer.AdamW(sched, parameters=net.parameters())
    for _ in range(2):
        (net(paddle.randn([5, 3])) ** 2).mean().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    state = opt.state_dict()
    if amp:
        state["master_weights"] = {}
        for p in net.parameters():
            m = paddle.to_tensor(p.numpy())
            m.name = p.name + "_fp32_master_0"
            state["master_weights"][p.name] = m
        state["LR_Scheduler"] = state.pop("LR_Scheduler")
    return state, [p.name for p in net.parameters()]


def _shard(state, params, rank, lr, replicated=False):
    """What rank `rank` of a 4-way sharding holds: its parameters' accumulators (and master
    weights), and the scheduler when `lr`; `replicated`: every parameter's, with values of its
    own (paddle.distributed.save then gathers nothing and saves the writer's state)."""
    if replicated:
        out = {k: v * (rank + 1) if isinstance(v, paddle.Tensor) else v for k, v in state.items()}
        for k, v in state.items():
            if isinstance(v, paddle.Tensor):
                out[k].name = v.name
        if "master_weights" in state:
            out["master_weights"] = {p: state["master_weights"][p] for p in params[rank:]}
        out.pop("LR_Scheduler", None)
        if lr:
            out["LR_Scheduler"] = dict(state["LR_Scheduler"], last_epoch=10 + rank)
        return out
    mine = [p for i, p in enumerate(params) if i % RANKS == rank]
    out = {k: v for k, v in state.items()
           if isinstance(v, paddle.Tensor) and any(k.startswith(p + "_") for p in mine)}
    if "master_weights" in state:
        out["master_weights"] = {p: state["master_weights"][p] for p in mine}
    if lr:
        out["LR_Scheduler"] = dict(state["LR_Scheduler"], last_epoch=10 + rank)
    return out


class _Group:
    """all_gather_object across threads, one thread per rank."""

    def __init__(self, n):
        self.n, self.slots, self.local = n, [None] * n, threading.local()
        self.barrier = threading.Barrier(n)

    def all_gather_object(self, out, obj, group=None):
        self.slots[self.local.rank] = obj
        self.barrier.wait()
        out.extend(self.slots)
        self.barrier.wait()


def _paddle_gather(files, target, out, monkeypatch):
    group = _Group(RANKS)
    monkeypatch.setattr(dist, "all_gather_object", group.all_gather_object)
    monkeypatch.setattr(dist, "get_rank", lambda *a: group.local.rank)
    monkeypatch.setattr(dist, "get_world_size", lambda *a: RANKS)
    result, errors = {}, []

    def rank_main(r):
        group.local.rank = r
        try:  # paddle.distributed.save's branch for state_type="opt" under sharding
            state = paddle.load(str(files[r]))
            same = dist_save._same_keys(state, None)
            result[r] = state if same else dist_save._gather_state_dict(state, [target], None)
        except Exception as e:  # reported below
            errors.append(e)
            group.barrier.abort()

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(RANKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    paddle.save(result[target], str(out))


def _raw(path):
    """The file as plain pickle data (tensors as (dtype, shape, bytes)), keys in order."""
    class _Up(pickle.Unpickler):
        def find_class(self, module, name):
            if module.startswith("numpy") or (module, name) == ("builtins", "tuple"):
                return super().find_class(module, name)
            raise pickle.UnpicklingError(f"{module}.{name}")

    def plain(v):
        if isinstance(v, dict):
            return [(k, plain(x)) for k, x in v.items()]
        if isinstance(v, tuple):
            return tuple(plain(x) for x in v)
        if isinstance(v, np.ndarray):
            return (v.dtype.str, v.shape, v.tobytes())
        return v

    with open(path, "rb") as f:
        return plain(_Up(f).load())


@pytest.mark.parametrize("amp,replicated", [(False, False), (True, False), (True, True)],
                         ids=["adamw", "amp", "same-keys"])
def test_gather_equals_paddles_gather_state_dict(tmp_path, monkeypatch, amp, replicated):
    state, params = _full_state(amp)
    files = []
    for r in range(RANKS):
        files.append(tmp_path / f"rank{r}.pdopt")
        paddle.save(_shard(state, params, r, lr=r != 2 or replicated, replicated=replicated),
                    str(files[r]))
    for target in (1, 2):  # rank 2 has no LR_Scheduler
        theirs, ours = tmp_path / f"paddle_{target}.pdopt", tmp_path / f"pdckpt_{target}.pdopt"
        _paddle_gather(files, target, theirs, monkeypatch)
        proc = subprocess.run(["mpirun", "-n", str(RANKS), "--oversubscribe", str(TOOL),
                               str(tmp_path / "rank%d.pdopt"), str(ours), str(target), "opt", NUMPY_MODULE],
                              capture_output=True, text=True, env=MPI_ENV, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        want = _raw(theirs)
        assert ("LR_Scheduler" in dict(want)) == (target != 2 or replicated)
        if not amp and not replicated:  # the state-dict path: every key in the name table
            table = dict(want)["StructuredToParameterName@@"]
            assert len(table) == 16
        assert _raw(ours) == want, target
        assert ours.read_bytes() == theirs.read_bytes(), target
