# SPDX-License-Identifier: Apache-2.0
"""pdckpt.stats / pdckpt.plot_stats: the numbers `pdckpt stats` prints (computed by the same C
function, pdckpt_tensor_stats_compute), and an optional picture of them."""

from __future__ import annotations

import math
from typing import Any

_FIELDS = ("min", "max", "mean", "std", "zeros", "nan", "pos_inf", "neg_inf")


def stats(path: Any, *, format: str | None = None, names: list[str] | None = None,
          program: str | None = None) -> dict[str, dict]:
    """Per-tensor statistics of a checkpoint, keyed like ``pdckpt ls``'s text keys ("a/0/b").

    Each value has ``key`` (the path as a tuple), ``dtype``, ``shape``, and ``min``, ``max``,
    ``mean``, ``std`` (over the finite elements; NaN when there are none) with ``zeros``, ``nan``,
    ``pos_inf``, ``neg_inf`` counts.  Complex tensors have no order: their numbers are None.
    `path` is anything :func:`pdckpt.load` accepts; nothing is converted to NumPy or Paddle."""
    from . import _open_tree

    tree = _open_tree(path, {"format": format, "names": names, "program": program})
    try:
        rows = tree.stats()
    finally:
        tree.close()
    out = {}
    for key, dtype, shape, numbers in rows:
        entry = {"key": key, "dtype": dtype, "shape": shape}
        entry.update(zip(_FIELDS, numbers or (None,) * len(_FIELDS)))
        out["/".join(map(str, key))] = entry
    return out


def nonfinite(table: dict[str, dict]) -> list[str]:
    """The keys of `table` (from :func:`stats`) whose tensors hold NaN or Inf."""
    return [k for k, s in table.items()
            if s["nan"] is not None and s["nan"] + s["pos_inf"] + s["neg_inf"]]


def plot_stats(path: Any, png: str, **load_options: Any) -> None:
    """Draws each tensor's min..max range and mean +/- std (one row per tensor, NaN/Inf in red)
    into `png`.  Needs matplotlib (``pip install matplotlib``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("pdckpt.plot_stats needs matplotlib: pip install matplotlib") from e
    table = stats(path, **load_options)
    rows = [(k, s) for k, s in table.items() if s["min"] is not None]
    bad = set(nonfinite(table))
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.28 * len(rows) + 1)))
    for y, (key, s) in enumerate(rows):
        color = "tab:red" if key in bad else "tab:blue"
        if not math.isnan(s["min"]):
            ax.hlines(y, s["min"], s["max"], color=color, alpha=0.35, linewidth=6)
            ax.errorbar(s["mean"], y, xerr=s["std"], fmt="o", color=color, markersize=3)
    ax.set_yticks(range(len(rows)), [k for k, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("value: bar = min..max, point = mean +/- std (red: holds NaN/Inf)")
    ax.set_title(f"{path}: {len(rows)} tensors, {len(bad)} with NaN/Inf", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
