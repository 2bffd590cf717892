# SPDX-License-Identifier: Apache-2.0
"""Turns bench/results.json into BENCHMARKS.md (tables with ratios) and bench/chart.png.

    .venv/bin/python bench/report.py bench/results.json
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = [("save", "save (buffered)"), ("save_fsync", "save (durable)"), ("open_cold", "open, cold"),
       ("load_cold", "load, cold"), ("load_warm", "load, warm")]
TABLES = [("tensor", "Drop-in: paddle.Tensors in, paddle.Tensors out"),
          ("numpy", "NumPy arrays in, NumPy arrays out"),
          ("c", "C API (no Python objects)"),
          ("threads", "Scaling: the drop-in pickle load (paddle.Tensors out) by reading threads")]
PADDLE = "paddle.save/load"


def fmt_s(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def cell(m):
    return "—" if not m else f"{fmt_s(m['median_s'])} ({fmt_s(m['min_s'])}–{fmt_s(m['max_s'])})"


def op_of(rec, op):
    """Results keyed with the run's temperature: a run without root has no cold loads."""
    return rec.get(op) or rec.get(op.replace("_cold", ""))


def contender_table(w, table):
    res = w["results"]
    names = [n for n, t in w["tables"].items() if t == table]
    lines = ["| contender | " + " | ".join(label for _, label in OPS) +
             " | peak extra RSS, load / save | file |", "|---|" + "---|" * (len(OPS) + 2)]
    for name in names:
        rec = res[name]
        size = rec.get("file_bytes")
        lines.append(f"| {name} | " + " | ".join(cell(op_of(rec, op)) for op, _ in OPS) +
                     f" | {peak_of(rec, 'load')} / {peak_of(rec, 'save')} | " +
                     (f"{size / 2**20:.1f} MiB |" if size else "— |"))
    return lines


def peak_of(rec, kind):
    """The highest peak extra RSS among a contender's loads (or saves): kept apart, since a
    save's peak (Paddle's pickling copy) says nothing about its load's."""
    peaks = [m["peak_extra_rss_mib"] for op, m in rec.items()
             if op.startswith(kind) and isinstance(m, dict) and "peak_extra_rss_mib" in m]
    return f"{max(peaks):.0f} MiB" if peaks else "—"


def limits_table(w):
    rec = w["results"].get("limits", {})
    lines = ["| limit | time |", "|---|---|"]
    lines += [f"| {name} | {cell(m)} |" for name, m in rec.items() if isinstance(m, dict) and m]
    return lines


def median(res, name, op, key="median_s"):
    m = op_of(res.get(name, {}), op) if name in res else None
    return m.get(key) if m else None


def call_table(w):
    """The Python loads' calls alone: the timed load above also touches every byte of the
    result through one NumPy view per tensor, a per-tensor cost every contender pays."""
    res = w["results"]
    lines = ["| contender | load call, cold | load call, warm |", "|---|---|---|"]
    for name, table in w["tables"].items():
        if table not in ("tensor", "numpy"):
            continue
        cells = []
        for op in ("load_cold", "load_warm"):
            m = op_of(res[name], op)
            cells.append("—" if not m or "call_median_s" not in m else
                         f"{fmt_s(m['call_median_s'])} ({fmt_s(m['call_min_s'])}–"
                         f"{fmt_s(m['call_max_s'])})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def target_rows(name, w):
    """Issue 18's targets: (target, pdckpt contender, figure, required, verdict)."""
    res, info = w["results"], w["info"]
    rows = []

    def versus(label, ours, op, peer, peer_op, need, key="median_s"):
        t, p = median(res, ours, op, key), median(res, peer, peer_op, key)
        if t and p:
            r = p / t
            rows.append((label, ours, f"{r:.2f}×", f"≥ {need}×", "met" if r >= need else "missed"))

    warm_need = 2 if name == "W2" else 3
    versus(f"drop-in warm load ≥ {warm_need}× paddle.load", "pdckpt pickle", "load_warm", PADDLE,
           "load_warm", warm_need)
    versus("drop-in cold load ≥ 1.3× paddle.load", "pdckpt pickle", "load_cold", PADDLE,
           "load_cold", 1.3)
    versus(f"drop-in warm load call alone ≥ {warm_need}× paddle.load", "pdckpt pickle",
           "load_warm", PADDLE, "load_warm", warm_need, "call_median_s")
    versus("drop-in cold load call alone ≥ 1.3× paddle.load", "pdckpt pickle", "load_cold",
           PADDLE, "load_cold", 1.3, "call_median_s")
    if name != "W2":
        versus("drop-in cold load ≥ 0.9× cold cat", "pdckpt pickle", "load_cold", "limits",
               "cat (cold)", 0.9)
    for op, label in (("save", "buffered"), ("save_fsync", "durable")):
        versus(f"drop-in save ({label}) ≥ 3× paddle.save", "pdckpt pickle", op, PADDLE, op, 3)
    if name != "W2":
        versus("drop-in save (buffered) ≥ 0.9× dd", "pdckpt pickle", "save", "limits",
               "dd write", 0.9)
        versus("drop-in save (durable) ≥ 0.9× dd conv=fsync", "pdckpt pickle", "save_fsync",
               "limits", "dd write (durable)", 0.9)
    for op, label in (("save", "save"), ("load_cold", "cold load"), ("load_warm", "warm load")):
        versus(f"NumPy {label} ≥ 1.5× safetensors.numpy", "pdckpt safetensors (np)", op,
               "safetensors.numpy", op, 1.5)
        if op.startswith("load"):
            versus(f"NumPy {label} call alone ≥ 1.5× safetensors.numpy",
                   "pdckpt safetensors (np)", op, "safetensors.numpy", op, 1.5, "call_median_s")
    data_mib = info["bytes"] / 2**20
    rss = max((m.get("peak_extra_rss_mib", 0) for op, m in res.get("pdckpt pickle", {}).items()
               if op.startswith("load") and isinstance(m, dict)), default=None)
    if rss is not None:
        rows.append(("drop-in load peak extra RSS ≤ data + 64 MiB", "pdckpt pickle",
                     f"{rss:.0f} MiB", f"≤ {data_mib + 64:.0f} MiB",
                     "met" if rss <= data_mib + 64 else "missed"))
    limit = {"W2": 0.050, "W3": 0.020}.get(name)
    t = median(res, "pdckpt pickle", "open_cold")
    if limit and t:
        rows.append((f"lazy open of the pickle ≤ {fmt_s(limit)}", "pdckpt pickle", fmt_s(t),
                     f"≤ {fmt_s(limit)}", "met" if t <= limit else "missed"))
    if name == "W2":
        for c in ("pdckpt C pickle", "pdckpt C combined", "pdckpt C safetensors"):
            t = median(res, c, "load_warm")
            if t:
                us = t / info["tensors"] * 1e6
                rows.append(("C warm load ≤ 5 µs per tensor", c, f"{us:.1f} µs", "≤ 5 µs",
                             "met" if us <= 5 else "missed"))
    return rows


def targets(report):
    lines = ["## Targets (issue 18), from this run", "",
             "A ratio is the other's median time ÷ pdckpt's (> 1: pdckpt is faster).", "",
             "| workload | target | pdckpt contender | figure | required | |",
             "|---|---|---|---|---|---|"]
    for name, w in report["workloads"].items():
        for t, c, fig, need, verdict in target_rows(name, w):
            lines.append(f"| {name} | {t} | {c} | {fig} | {need} | {verdict} |")
    return lines + [""]


def workload_section(name, w):
    info = w["info"]
    out = [f"### {name}: {info['tensors']:,} tensors, {info['bytes'] / 2**30:.3f} GiB "
           f"(scale {info['scale']})", ""]
    if w.get("load_average"):
        avgs = ", ".join(f"{a[0]:.1f}" for a in w["load_average"])
        out += [f"Load average (1 min) at the start and after each repetition: {avgs}."]
    if w.get("max_resident_after_evict") is not None:
        out += [f"Most of a checkpoint left in the page cache after eviction (fincore): "
                f"{w['max_resident_after_evict'] / 2**20:.1f} MiB."]
    out += [""]
    for table, title in TABLES:
        if any(t == table for t in w["tables"].values()):
            out += [f"**{title}**", ""] + contender_table(w, table) + [""]
    if len(call_table(w)) > 2:
        out += ["**The load calls alone** (the loads above less the benchmark's touch of every "
                "byte, one NumPy view per tensor)", ""] + call_table(w) + [""]
    return out + ["**Limits of this machine**", ""] + limits_table(w) + [""]


def chart(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["workloads"])
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 4 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        w = report["workloads"][name]
        res = w["results"]
        contenders = [c for c, t in w["tables"].items() if t in ("tensor", "numpy")]
        ops = [("save", "save"), ("save_fsync", "save durable"), ("load_cold", "load cold"),
               ("load_warm", "load warm")]
        width = 0.8 / len(ops)
        for k, (op, label) in enumerate(ops):
            vals = [median(res, c, op) or 0 for c in contenders]
            ax.bar([i + k * width for i in range(len(contenders))], vals, width, label=label)
        ax.set_xticks([i + 1.5 * width for i in range(len(contenders))])
        ax.set_xticklabels(contenders, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("seconds (median, log scale)")
        ax.set_title(f"{name}: Tensor-in/out (drop-in) and NumPy contenders")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    path = sys.argv[1]
    with open(path) as f:
        report = json.load(f)
    out = ["# Benchmarks", "",
           f"Generated by `./run.sh bench` (bench/bench.py; scale {report['scale']}"
           f"{' -- ' + report['note'] if report.get('note') else ''}, "
           f"{report['repeat']} repetitions, contenders interleaved within each repetition; "
           f"cold loads: {report.get('cold_method', 'page cache dropped before each') if report['cold_loads'] else 'none (warm only)'}"
           f"); machine: {report['machine']['cpus']} CPUs, `{report['machine']['uname']}`.  "
           "Every contender of a table gets the same input and returns the same kind of output.  "
           "Times are medians with min–max; *peak extra RSS* is the process's peak above its "
           "RSS before the operation, the highest among a contender's loads and among its saves "
           "(for saves the state is already in memory).  "
           "Raw data: [bench/results.json](bench/results.json); chart: "
           "[bench/chart.png](bench/chart.png).", ""]
    out += targets(report)
    for name, w in report["workloads"].items():
        out += workload_section(name, w)
    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            out += [f.read()]
    with open(os.path.join(os.path.dirname(HERE), "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    chart(report, os.path.join(os.path.dirname(path), "chart.png"))


if __name__ == "__main__":
    main()
