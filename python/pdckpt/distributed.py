# SPDX-License-Identifier: Apache-2.0
"""Sharded checkpoints from a Paddle job: ``save_state_dict`` / ``load_state_dict``, drop-in for
``paddle.distributed.save_state_dict`` / ``load_state_dict`` (Paddle 3.x), over the job's own
process group -- no MPI.

The files are Paddle's flex-checkpoint layout, the ones ``pdckpt_mpi_save_sharded`` writes: one
``<rank>_<id>.distcp`` data file per rank that stores pieces and ``<id>.metadata`` (Paddle's
pickled ``Metadata``), so Paddle's ``load_state_dict`` reads them and these functions read
Paddle's.  Every byte goes through the C library (``py_sharded.c``); Paddle is used for what only
it knows -- where a dist tensor's local piece sits in the global tensor -- and for its collectives,
which move a few small messages:

  save   every rank describes its pieces (gathered on the coordinator), the coordinator plans --
         sweeps what killed saves left, picks the id, dedups replicas, picks who writes what --
         and sends each rank its assignment (scatter); every rank writes its data file
         (atomically, durably); the statuses are gathered and only when every rank succeeded does
         the coordinator write the metadata (the commit point, atomic) and broadcast the outcome.
  load   the coordinator reads the metadata's keys and broadcasts them with the id; every rank
         reads only the boxes its tensors need (mapped files: only the pages that hold them) and
         copies them into its tensors; the outcome is agreed.

Every step's failure on any rank is agreed: all ranks raise (the failing rank its own exception,
the others the same class with "rank R: " before the message), and nothing is committed.

Async save (``async_save=True``): the plan is made and this rank's pieces are copied into host
memory before the call returns (the tensors may then change); the data file is written by a
background thread (C, no Python, no Paddle).  The commit needs every rank's outcome, so it is a
collective: ``handle.wait()`` -- called by every rank, on the thread that runs the job's
collectives -- waits for the local write, then gathers, commits and agrees.  A later
``save_state_dict`` / ``load_state_dict`` waits for a pending save first (as Paddle's own
``clear_async_save_task_queue``), so forgetting ``wait()`` never loses a checkpoint that a later
call could still commit.  See docs/distributed.md, "From a Paddle job".
"""

from __future__ import annotations

import atexit
import hashlib
import os
import warnings
from typing import Any

import numpy as np

from . import _native
from ._convert import paddle_save_spec, paddle_spec
from ._errors import BY_STATUS, ArgumentError, Error, MismatchError, UnsupportedError, make

__all__ = ["save_state_dict", "load_state_dict", "AsyncSave", "wait_pending"]

_OK, _FAIL = b"\0", b"\1"
_pending: "AsyncSave | None" = None
_savers: dict = {}


# ---- the job's process group -----------------------------------------------------------------

class _Comm:
    """The few collectives a save or load needs, over Paddle's process group (Gloo on CPU, NCCL on
    GPU: the message tensors go to Paddle's current device, as its object collectives do).
    Ranks are the group's: `rank` is this process's index in it.  Data files are numbered by
    global rank (`ranks[rank]`), as Paddle's save_state_dict names them ("<get_rank()>_<id>"),
    so a save over a sub-group writes the files Paddle would."""

    def __init__(self, paddle: Any, group: Any, coordinator_rank: int) -> None:
        dist = paddle.distributed
        self.paddle, self.dist, self.group = paddle, dist, group
        world = dist.get_world_size()
        if world > 1 and group is None and not dist.is_initialized():
            dist.init_parallel_env()
        self.ranks = list(group.ranks) if group is not None else list(range(world))
        me = dist.get_rank() if world > 1 else 0
        if me not in self.ranks:
            raise make(ArgumentError, None, f"rank {me} is not in the process group")
        if coordinator_rank not in self.ranks:
            raise make(ArgumentError, None,
                       f"coordinator_rank {coordinator_rank} is not in the process group")
        self.rank, self.size = self.ranks.index(me), len(self.ranks)
        self.coord = coordinator_rank  # a global rank, as Paddle's src/dst are
        self.is_coord = me == coordinator_rank

    def _bytes_tensor(self, data: bytes, size: int) -> Any:
        buf = np.zeros(max(size, 1), np.uint8)
        buf[:len(data)] = np.frombuffer(data, np.uint8)
        return self.paddle.to_tensor(buf)

    def _ints(self, values: list) -> Any:
        return self.paddle.to_tensor(np.array(values, np.int64))

    def gather(self, data: bytes) -> list | None:
        """Every rank's bytes, in rank order, on the coordinator (None elsewhere)."""
        if self.size == 1:
            return [data]
        lens: list = []
        self.dist.all_gather(lens, self._ints([len(data)]), group=self.group)
        lens = [int(t.numpy()[0]) for t in lens]
        out: list | None = [] if self.is_coord else None
        self.dist.gather(self._bytes_tensor(data, max(lens)), out, dst=self.coord,
                         group=self.group)
        if not self.is_coord:
            return None
        return [t.numpy()[:n].tobytes() for t, n in zip(out, lens)]

    def scatter(self, items: list | None) -> bytes:
        """items[r] (given on the coordinator) to rank r."""
        if self.size == 1:
            return items[0]
        size = self._ints([max(len(x) for x in items) if self.is_coord else 0])
        self.dist.broadcast(size, src=self.coord, group=self.group)
        size = int(size.numpy()[0]) + 8
        sent = None
        if self.is_coord:  # each padded to one size, its length in front
            sent = [self._bytes_tensor(len(x).to_bytes(8, "little") + x, size) for x in items]
        out = self.paddle.empty([size], dtype="uint8")
        self.dist.scatter(out, sent, src=self.coord, group=self.group)
        raw = out.numpy().tobytes()
        return raw[8:8 + int.from_bytes(raw[:8], "little")]

    def bcast(self, data: bytes | None) -> bytes:
        """The coordinator's bytes on every rank."""
        if self.size == 1:
            return data
        size = self._ints([len(data) if self.is_coord else 0])
        self.dist.broadcast(size, src=self.coord, group=self.group)
        buf = self._bytes_tensor(data if self.is_coord else b"", int(size.numpy()[0]))
        self.dist.broadcast(buf, src=self.coord, group=self.group)
        return buf.numpy()[:int(size.numpy()[0])].tobytes()


# ---- agreeing on failures ----------------------------------------------------------------------

def _status_of(e: BaseException) -> int:
    if isinstance(e, Error):
        return e.status
    for status, kinds in ((2, MemoryError), (3, OSError), (5, NotImplementedError),
                          (1, (ValueError, TypeError, KeyError, AssertionError))):
        if isinstance(e, kinds):
            return status
    return 9


def _failure(rank: int, e: BaseException) -> bytes:
    text = str(e) or type(e).__name__
    return _FAIL + _status_of(e).to_bytes(1, "little") + rank.to_bytes(4, "little") + \
        text.encode("utf-8", "replace")


def _first_failure(messages: list) -> bytes | None:
    for m in messages:
        if m[:1] != _OK:
            return m
    return None


def _raise_if_failed(message: bytes, mine: BaseException | None) -> bytes:
    """The payload of an OK message; else raises: this rank's own exception if it failed, the
    failing rank's error otherwise."""
    if message[:1] == _OK:
        return message[1:]
    if mine is not None:
        raise mine
    status, rank = message[1], int.from_bytes(message[2:6], "little")
    cls = BY_STATUS.get(status, Error)
    raise make(cls, None, f"rank {rank}: {message[6:].decode('utf-8', 'replace')}", status)


# ---- the pieces of a state dict ----------------------------------------------------------------

def _flatten(state_dict: Any) -> dict:
    """Paddle's flatten_state_dict: nested dicts of tensors as {"a.b.c": tensor}."""
    if not isinstance(state_dict, dict):
        raise make(ArgumentError, None,
                   f"the state_dict should be a dict, not {type(state_dict).__name__}")
    flat: dict = {}

    def walk(prefix: tuple, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise make(ArgumentError, None, f"state_dict keys must be str, found {k!r}")
                walk(prefix + (k,), v)
        else:
            flat[".".join(prefix)] = value

    walk((), state_dict)
    return flat


def _layout(paddle: Any) -> Any:
    try:
        from paddle.distributed.flex_checkpoint.dcp.utils import \
            compute_local_shape_and_global_offset as compute
    except ImportError:  # Paddle before 3.1
        from paddle.distributed.checkpoint.utils import \
            compute_local_shape_and_global_offset as compute
    return compute


def _dist_box(paddle: Any, key: str, val: Any, compute: Any) -> tuple | None:
    """(local value, global shape, global offset) of a dist tensor, or None off its mesh."""
    if any(p.is_partial() for p in val.placements):
        raise make(UnsupportedError, None, f"'{key}' is Partial (each rank holds a partial "
                   "sum): reshard it to Replicate or Shard before saving")
    local = val._local_value()
    if len(val.shape) == 0:
        return local, (), ()
    try:
        shape, offset = compute(list(val.shape), val.process_mesh, val.placements)
    except AttributeError as e:  # Paddle 3.3's own save_state_dict fails the same way
        raise make(UnsupportedError, None, f"'{key}': Paddle cannot place its pieces "
                   f"({val.placements}: one tensor dim sharded over several mesh dims, which "
                   f"Paddle's compute_local_shape_and_global_offset does not handle: {e})") from e
    if shape is None:
        return None
    if tuple(shape) != tuple(local.shape):
        raise make(MismatchError, None, f"'{key}': the local value is {list(local.shape)}, "
                   f"its placements make it {list(shape)}")
    return local, tuple(val.shape), tuple(offset)


def _piece(paddle: Any, key: str, val: Any, compute: Any) -> tuple | None:
    """(local tensor, global shape, global offset) of one value, or None when this rank holds no
    piece of it; computed as Paddle's save_state_dict computes them."""
    if isinstance(val, paddle.Tensor):
        if not val._is_initialized():
            return None  # a dist tensor on a mesh without this rank
        if not val.is_dist():
            return val, tuple(val.shape), (0,) * len(val.shape)
        return _dist_box(paddle, key, val, compute)
    if hasattr(val, "local_tensor") and hasattr(val, "global_offset"):  # ShardedWeight
        piece = val.local_tensor, tuple(val.global_shape), tuple(val.global_offset)
        if getattr(val, "is_flattened", False):  # its box's shape and its run (C checks them)
            return (*piece, tuple(val.local_shape), _run_of(key, val.flattened_range))
        return piece
    raise make(ArgumentError, None, f"the value of '{key}' should be a paddle.Tensor or a "
               f"ShardedWeight, not {type(val).__name__}")


def _run_of(key: str, run: Any) -> tuple:
    """A flattened ShardedWeight's flattened_range (a slice, as sharding v2 makes it) as the
    (start, stop) Paddle's metadata records."""
    start, stop = getattr(run, "start", None), getattr(run, "stop", None)
    if not isinstance(start, (int, np.integer)) or not isinstance(stop, (int, np.integer)) or \
            getattr(run, "step", None) not in (None, 1):
        raise make(ArgumentError, None, f"'{key}' is flattened: its flattened_range should be a "
                   f"slice(start, stop) of ints, not {run!r}")
    return int(start), int(stop)


def _run_box(key: str, shape: tuple, run: Any, numel: int) -> tuple:
    """The smallest box of `shape` holding the row-major run [start, stop): (its offset, its
    shape, the run's [lo, hi) in the box's flattening).  Dims before the first one where the
    run's first and last index differ are fixed, that one spans both, later dims are whole -- so
    the box is itself one contiguous stretch of the flattening, starting at its offset."""
    start, stop = _run_of(key, run)
    total = int(np.prod(shape)) if shape else 1
    if not 0 <= start < stop <= total or stop - start != numel:
        raise make(MismatchError, None, f"'{key}': flattened_range [{start}, {stop}) does not "
                   f"fit its box {list(shape)} and local tensor of {numel} elements")
    first, last = np.unravel_index(start, shape), np.unravel_index(stop - 1, shape)
    off, box, split = [], [], False
    for d, n in enumerate(shape):
        off.append(0 if split else int(first[d]))
        box.append(n if split else int(last[d]) - int(first[d]) + 1)
        split = split or first[d] != last[d]
    lo = start - int(np.ravel_multi_index(off, shape))
    return tuple(off), tuple(box), (lo, lo + stop - start)


def _pieces(paddle: Any, state_dict: Any) -> list:
    """[(flat key, local tensor, global shape, global offset[, box shape, (start, stop)])] this
    rank holds; a flattened ShardedWeight's box shape is its local_shape and (start, stop) its
    run of that box's row-major flattening, as Paddle's metadata records them."""
    compute = _layout(paddle)
    out = []
    for key, val in _flatten(state_dict).items():
        piece = _piece(paddle, key, val, compute)
        if piece is not None:
            out.append((key, *piece))
    return out


# ---- saving ------------------------------------------------------------------------------------

class AsyncSave:
    """A sharded save whose data file is being written in the background.  ``wait()`` (every rank,
    collectively) commits it and returns its id; ``id`` is known from the start; ``done`` tells
    whether it was committed or failed."""

    def __init__(self, comm: _Comm, plan: Any, saver: Any, failed: bytes | None,
                 mine: BaseException | None, ckpt_id: int, path: str, keep_last: int) -> None:
        self._comm, self._plan, self._saver = comm, plan, saver
        self._failed, self._mine = failed, mine
        self.id, self.path, self._keep = ckpt_id, path, keep_last
        self.done = False
        self._error: BaseException | None = None

    def wait(self) -> int:
        """Waits for this rank's data file, then (collectively) commits: the checkpoint is
        complete when this returns on any rank.  Raises what any rank's write or the commit
        raised, on every rank."""
        global _pending
        if _pending is self:
            _pending = None
        if not self.done:
            self.done = True
            status, mine = self._failed or _OK, self._mine
            if self._failed is None:
                try:
                    _native.async_wait(self._saver)
                except Exception as e:  # noqa: BLE001 -- agreed with the other ranks below
                    status, mine = _failure(self._comm.rank, e), e
            try:
                _commit(self._comm, self._plan, status, mine, self._keep)
            except BaseException as e:
                self._error = e
            self._plan = None
        if self._error is not None:
            raise self._error
        return self.id

    def __repr__(self) -> str:
        state = "committed" if self.done and self._error is None else (
            "failed" if self.done else "writing")
        return f"<pdckpt.distributed.AsyncSave id={self.id} {state} {self.path!r}>"


def wait_pending() -> int | None:
    """Commits the pending async save of this process, if any (collective: every rank calls it,
    as every rank's save_state_dict and load_state_dict do first).  Returns its id."""
    pending = _pending
    return pending.wait() if pending is not None else None


@atexit.register
def _at_exit() -> None:
    """A save still pending at exit cannot be committed (that is a collective, and the other ranks
    may be gone): its data file is finished, so nothing is left half-written, and it is said."""
    pending = _pending
    if pending is None or pending.done:
        return
    try:
        _native.async_wait(pending._saver)
    except Exception:  # noqa: BLE001 -- an uncommitted save; the next save or gc sweeps it
        pass
    warnings.warn(f"pdckpt: the async sharded save of id {pending.id} in {pending.path} was "
                  "never committed (call wait() on every rank); it is not a checkpoint",
                  RuntimeWarning, stacklevel=1)


def _commit(comm: _Comm, plan: Any, status: bytes, mine: BaseException | None,
            keep_last: int) -> None:
    """Gathers every rank's write status; the coordinator commits only when all succeeded."""
    statuses = comm.gather(status)
    outcome = None
    if comm.is_coord:
        outcome = _first_failure(statuses)
        if outcome is None:
            try:
                _native.sharded_commit(plan, keep_last)
                outcome = _OK
            except Exception as e:  # noqa: BLE001 -- agreed below
                outcome, mine = _failure(comm.rank, e), e
    _raise_if_failed(comm.bcast(outcome), mine)


def _arguments(*args: Any) -> bytes:
    """A digest of the arguments every rank must pass alike (the coordinator plans with its own)."""
    return hashlib.sha256(repr(args).encode()).digest()


def _same_arguments(descs: list, coord: int) -> tuple:
    """(a failure naming the first rank whose arguments differ from the coordinator's, or None;
    the descriptions without the digests)."""
    for r, d in enumerate(descs):
        if d[1:33] != descs[coord][1:33]:
            e = make(MismatchError, None, "path, unique_id, async_save, safetensors, keep_last "
                     "and durable must be the same on every rank")
            return _failure(r, e), None
    return None, [d[33:] for d in descs]


def _plan(comm: _Comm, path: str, descs: list, unique_id: int, fmt: str, durable: bool) -> tuple:
    """On the coordinator: (plan, one message per rank: the id and its assignment)."""
    failed = _first_failure(descs)
    if failed is None:
        failed, descs = _same_arguments(descs, comm.rank)
    if failed is not None:
        return None, [failed] * comm.size, None
    try:
        plan = _native.sharded_plan(path, descs, unique_id, fmt, durable, comm.ranks)
        ident = _native.sharded_plan_id(plan).to_bytes(8, "little")
        return plan, [_OK + ident + a for a in _native.sharded_assignments(plan, comm.size)], None
    except Exception as e:  # noqa: BLE001 -- agreed with the other ranks
        return None, [_failure(comm.rank, e)] * comm.size, e


def _saver(fmt: str, durable: bool) -> Any:
    """One background saver per data format: its staging memory is reused save after save."""
    key = (fmt, durable)
    if key not in _savers:
        _savers[key] = _native.async_saver(fmt, durable)
    return _savers[key]


def save_state_dict(state_dict: dict, path: str | os.PathLike, process_group: Any = None,
                    coordinator_rank: int = 0, unique_id: int | None = None,
                    async_save: bool = False, safetensors: bool = False,
                    save_replicas: bool = False, *, keep_last: int = 0,
                    durable: bool = True) -> "int | AsyncSave":
    """Saves a (nested) dict of ``paddle.Tensor`` -- dist tensors and ShardedWeights (also
    flattened ones, sharding v2's) saved as their pieces, replicated ones once -- into the
    directory `path`, collectively over
    `process_group` (default: the whole job; a single process needs none).  Like Paddle's, with:

    * ``unique_id`` -- None takes one past every id in `path` (Paddle reuses the largest); an
      existing id is replaced only when the new one is committed;
    * ``async_save`` -- returns an :class:`AsyncSave` whose ``wait()`` (every rank) commits;
    * ``safetensors`` -- ``.safetensors`` data files instead of ``.distcp`` pickles;
    * ``keep_last`` -- once committed, keep only the newest N checkpoints in `path`;
    * ``durable`` -- fsync data files, metadata and directory (default True).

    Returns the checkpoint id (sync).  Data files are numbered by global rank, as Paddle's.
    ``save_replicas=True`` is refused: the extra copies it makes are listed as replicas that no
    loader reads (docs/distributed.md).
    """
    paddle = _paddle()
    wait_pending()
    if save_replicas:
        raise make(UnsupportedError, None, "save_replicas=True is not supported: Paddle then "
                   "writes every rank's copy of a replicated piece into its own data file, "
                   "listed under replica_id >= 1, which neither Paddle's load_state_dict nor "
                   "pdckpt ever reads (both read replica_id 0); pdckpt stores each replicated "
                   "piece once (and reads checkpoints saved with save_replicas)")
    if unique_id is not None and int(unique_id) < 0:
        raise make(ArgumentError, None, f"unique_id must be >= 0, not {unique_id}")
    comm = _Comm(paddle, process_group, coordinator_rank)
    path = os.fsdecode(os.fspath(path))
    fmt = "safetensors" if safetensors else "pickle"
    args = _arguments(os.path.normpath(path), unique_id, bool(async_save), fmt, int(keep_last),
                      bool(durable))
    # The directory as named now: an async save's commit (wait()) after a chdir must not land in
    # -- and replace -- another directory's checkpoint of that name.
    path = os.path.abspath(path)
    stage, mine = None, None
    try:
        stage = _native.sharded_stage(_pieces(paddle, state_dict), paddle_save_spec(paddle))
        desc = _OK + args + _native.sharded_describe(stage)
    except Exception as e:  # noqa: BLE001 -- agreed with the other ranks
        desc, mine = _failure(comm.rank, e), e
    descs = comm.gather(desc)
    plan, messages, coord_error = None, None, None
    if comm.is_coord:
        wanted = -1 if unique_id is None else int(unique_id)
        plan, messages, coord_error = _plan(comm, path, descs, wanted, fmt, durable)
    payload = _raise_if_failed(comm.scatter(messages), mine or coord_error)
    ckpt_id, assignment = int.from_bytes(payload[:8], "little"), payload[8:]
    return _write(comm, plan, stage, assignment, path, ckpt_id, async_save, fmt, durable,
                  keep_last)


def _write(comm: _Comm, plan: Any, stage: Any, assignment: bytes, path: str, ckpt_id: int,
           async_save: bool, fmt: str, durable: bool, keep_last: int) -> "int | AsyncSave":
    global _pending
    status, mine = _OK, None
    try:
        if async_save:
            saver = _saver(fmt, durable)
            _native.sharded_write_async(saver, assignment, path, stage)
        else:
            _native.sharded_write(assignment, path, stage, durable)
    except Exception as e:  # noqa: BLE001 -- agreed with the other ranks
        status, mine = _failure(comm.rank, e), e
    if async_save:
        failed = None if status == _OK else status
        _pending = AsyncSave(comm, plan, _savers.get((fmt, durable)), failed, mine, ckpt_id,
                             path, keep_last)
        return _pending
    _commit(comm, plan, status, mine, keep_last)
    return ckpt_id


# ---- loading -----------------------------------------------------------------------------------

def _encode_keys(ckpt_id: int, keys: list) -> bytes:
    lines = [str(ckpt_id)] + [f"{k}\0{dt}\0{','.join(map(str, shape))}" for k, dt, shape in keys]
    return "\n".join(lines).encode()


def _decode_keys(data: bytes) -> tuple:
    lines = data.decode().split("\n")
    keys = {}
    for line in lines[1:]:
        k, dt, shape = line.split("\0")
        keys[k] = (dt, tuple(int(x) for x in shape.split(",") if x))
    return int(lines[0]), keys


def _target(paddle: Any, key: str, val: Any, compute: Any) -> tuple | None:
    """(local tensor, global shape, box offset, box shape, run) a value is loaded into, or None.
    A flattened ShardedWeight (sharding v2) is loaded as the smallest box holding its run, run
    being the run's [lo, hi) in that box's flattening; other values have run None."""
    if getattr(val, "is_flattened", False) and hasattr(val, "local_tensor"):
        local, shape = val.local_tensor, tuple(val.local_shape)
        sub, box, run = _run_box(key, shape, val.flattened_range, int(np.prod(local.shape)))
        offset = tuple(int(o) + s for o, s in zip(val.global_offset, sub))
        return local, tuple(val.global_shape), offset, box, run
    piece = _piece(paddle, key, val, compute)
    if piece is None:
        return None
    local, global_shape, offset = piece
    return local, global_shape, offset, tuple(local.shape), None


def _targets(paddle: Any, state_dict: Any, keys: dict) -> tuple:
    """[(key, local tensor, offset, shape, run)] to load, and the keys the checkpoint lacks."""
    from ._paddle_io import dtype_name

    compute = _layout(paddle)
    wanted, missing = [], []
    for key, val in _flatten(state_dict).items():
        target = _target(paddle, key, val, compute)
        if target is None:
            continue
        local, global_shape, offset, shape, run = target
        if key not in keys:
            missing.append(key)
            continue
        dtype, stored = keys[key]
        if dtype != dtype_name(local) or tuple(stored) != tuple(global_shape):
            raise make(MismatchError, None, f"'{key}': the checkpoint holds {dtype} "
                       f"{list(stored)}, the state_dict {dtype_name(local)} {list(global_shape)}")
        wanted.append((key, local, offset, shape, run))
    return wanted, missing


def _fill(paddle: Any, path: str, ckpt_id: int, wanted: list, mmap: bool) -> None:
    tree = _native.sharded_load(path, ckpt_id, [(k, o, s) for k, _, o, s, _ in wanted], mmap)
    try:
        values = tree.convert(None, False, paddle_spec(paddle))
    finally:
        tree.close()
    for key, local, _, _, run in wanted:
        src = values[key]
        if not isinstance(src, paddle.Tensor):
            src = paddle.to_tensor(src)
        if run is not None:  # a flattened target: its run of the box
            src = src.reshape([-1])[run[0]:run[1]].reshape(local.shape)
        paddle.assign(src.to(local.place) if src.place != local.place else src, local)


def load_state_dict(state_dict: dict, path: str | os.PathLike, process_group: Any = None,
                    coordinator_rank: int = 0, unique_id: int | None = None,
                    offload: bool = False, mw_name_compatibility: bool = True,
                    aoa_config: dict | None = None, safetensors: bool = False,
                    worker_groups: Any = None, comm_method: str = "broadcast", *,
                    mmap: bool = True) -> None:
    """Loads checkpoint `unique_id` (None: the newest complete one) of `path` into `state_dict`'s
    tensors in place, collectively -- each rank reads only the boxes its own tensors (dist
    tensors: their local pieces) need, from the files that hold them, whatever the sharding the
    checkpoint was saved with.  Like Paddle's: a key the checkpoint lacks is left as it is, with a
    warning; ``offload``, ``mw_name_compatibility``, ``safetensors`` (data files are recognised
    by name), ``worker_groups`` and ``comm_method`` change nothing here (no tensor travels between
    ranks); ``aoa_config`` is refused (docs/distributed.md).  A dtype or global shape that
    differs from the checkpoint's raises MismatchError."""
    del offload, mw_name_compatibility, safetensors, worker_groups, comm_method
    paddle = _paddle()
    wait_pending()
    if aoa_config is not None:
        raise make(UnsupportedError, None, "aoa_config is not supported: Paddle's AOA "
                   "statements rename, split, merge, transpose or cast checkpoint tensors while "
                   "they load, through Paddle's own engine; pdckpt loads each key into the tensor "
                   "of the same key (rename the state_dict's keys, or load with Paddle)")
    comm = _Comm(paddle, process_group, coordinator_rank)
    path = os.fsdecode(os.fspath(path))
    index, mine = None, None
    if comm.is_coord:
        try:
            wanted = -1 if unique_id is None else int(unique_id)
            index = _OK + _encode_keys(*_native.sharded_keys(path, wanted))
        except Exception as e:  # noqa: BLE001 -- agreed with the other ranks
            index, mine = _failure(comm.rank, e), e
    ckpt_id, keys = _decode_keys(_raise_if_failed(comm.bcast(index), mine))
    status, mine = _OK, None
    try:
        wanted, missing = _targets(paddle, state_dict, keys)
        if missing:
            warnings.warn(f"pdckpt: keys not in the checkpoint {path} (id {ckpt_id}), left as "
                          f"they are: {missing}", stacklevel=2)
        _fill(paddle, path, ckpt_id, wanted, mmap)
    except Exception as e:  # noqa: BLE001 -- agreed with the other ranks
        status, mine = _failure(comm.rank, e), e
    statuses = comm.gather(status)
    _raise_if_failed(comm.bcast(_first_failure(statuses) or _OK if comm.is_coord else None), mine)


def _paddle() -> Any:
    try:
        import paddle
    except ImportError as e:
        raise make(UnsupportedError, None, "pdckpt.distributed needs PaddlePaddle") from e
    return paddle
