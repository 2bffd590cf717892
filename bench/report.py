"""Turns bench/results.json into BENCHMARKS.md (tables with ratios) and bench/chart.png.

    .venv/bin/python bench/report.py bench/results.json
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = [("save", "save (buffered)"), ("save_fsync", "save (durable)"), ("open", "open (lazy)"),
       ("load", "full load (every byte read)")]
PEERS = {"W1": ["paddle.save", "safetensors", "numpy np.save", "numpy np.savez"],
         "W2": ["paddle.save", "safetensors", "numpy np.save", "numpy np.savez"],
         "W3": ["paddle.save"]}


def fmt_s(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(name, w):
    res, info = w["results"], w["info"]
    gib = info["bytes"] / 2**30
    lines = [f"### {name}: {info['tensors']:,} tensors, {gib:.3f} GiB (scale {info['scale']})", "",
             "| contender | " + " | ".join(label for _, label in OPS) + " | peak extra RSS | file |",
             "|---|" + "---|" * (len(OPS) + 2)]
    for contender, rec in res.items():
        cells = []
        for op, _ in OPS:
            m = rec.get(op)
            cells.append("—" if not m else
                         f"{fmt_s(m['median_s'])} ({fmt_s(m['min_s'])}–{fmt_s(m['max_s'])})")
        rss = max((rec[op].get("peak_extra_rss_mib", 0) for op, _ in OPS if op in rec),
                  default=0)
        size = rec.get("file_bytes")
        lines.append(f"| {contender} | " + " | ".join(cells) +
                     f" | {rss:.0f} MiB | {size / 2**20:.1f} MiB |" if size else
                     f"| {contender} | " + " | ".join(cells) + f" | {rss:.0f} MiB | — |")
    return lines


def ratio(res, a, b, op):
    try:
        return res[b][op]["median_s"] / res[a][op]["median_s"]
    except KeyError:
        return None


def ratios(name, w):
    res = w["results"]
    lines = [f"Ratios for {name} (median time of the other ÷ median time of pdckpt; > 1 means "
             "pdckpt is faster; for dd, < 1 means pdckpt is slower than the disk):", "",
             "| pdckpt | vs | save | save (durable) | full load |", "|---|---|---|---|---|"]
    ours = [c for c in res if c.startswith("pdckpt")]
    for c in ours:
        for peer in PEERS[name] + ["dd"]:
            cells = []
            for op in ("save", "save_fsync", "load"):
                r = ratio(res, c, peer, op)
                cells.append("—" if r is None else f"{r:.2f}×")
            lines.append(f"| {c} | {peer} | " + " | ".join(cells) + " |")
    return lines


def best(res, contenders, op, key=lambda m: m["median_s"]):
    """(contender, median) of the fastest of `contenders` at `op`."""
    got = [(c, key(res[c][op])) for c in contenders if op in res.get(c, {})]
    return min(got, key=lambda x: x[1]) if got else (None, None)


def target_rows(name, w):
    """Issue 7's targets for one workload: the best pdckpt contender, its figure, met or not."""
    res, info = w["results"], w["info"]
    ours = [c for c in res if c.startswith("pdckpt")]
    rows = []

    def row(target, op, peer, need, higher_is_better=True):
        c, t = best(res, ours, op)
        if c is None or peer not in res or op not in res[peer]:
            return
        r = res[peer][op]["median_s"] / t
        rows.append((target, c, f"{r:.2f}×", f"≥ {need}×", "met" if r >= need else "missed"))

    row("save ≥ 0.9× dd (buffered)", "save", "dd", 0.9)
    row("save ≥ 0.9× dd (durable)", "save_fsync", "dd", 0.9)
    row("full load ≥ 0.9× raw read", "load", "dd", 0.9)
    need = 20 if name == "W2" else 5
    for op, label in (("save", "save"), ("load", "full load")):
        row(f"{label} ≥ {need}× paddle", op, "paddle.save", need)
        if name in ("W1", "W2"):
            row(f"{label} ≥ 1.0× safetensors", op, "safetensors", 1.0)
    c, t = best(res, ours, "open")
    limit = 0.005 + 1e-6 * info["tensors"]
    if c:
        rows.append(("open ≤ 5 ms + 1 µs/tensor", c, fmt_s(t), f"≤ {fmt_s(limit)}",
                     "met" if t <= limit else "missed"))
    data_mib = info["bytes"] / 2**20
    worst = max((res[c][op].get("peak_extra_rss_mib", 0), c) for c in ours for op in res[c]
                if isinstance(res[c][op], dict))
    rows.append(("peak RSS ≤ data + 64 MiB (worst pdckpt)", worst[1], f"{worst[0]:.0f} MiB",
                 f"≤ {data_mib + 64:.0f} MiB", "met" if worst[0] <= data_mib + 64 else "missed"))
    return rows


def targets(report):
    lines = ["## Targets (issue 7), from this run", "",
             "The best pdckpt contender per target (a ratio is the other's median time ÷ "
             "pdckpt's; the workloads are at the run's scale).", "",
             "| workload | target | pdckpt contender | figure | required | |",
             "|---|---|---|---|---|---|"]
    for name, w in report["workloads"].items():
        for t, c, fig, need, verdict in target_rows(name, w):
            lines.append(f"| {name} | {t} | {c} | {fig} | {need} | {verdict} |")
    return lines + [""]


def chart(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["workloads"])
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 4 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        res = report["workloads"][name]["results"]
        contenders = list(res)
        width = 0.8 / 3
        for k, (op, label) in enumerate([("save", "save"), ("save_fsync", "save durable"),
                                         ("load", "full load")]):
            vals = [res[c][op]["median_s"] if op in res[c] else 0 for c in contenders]
            ax.bar([i + k * width for i in range(len(contenders))], vals, width, label=label)
        ax.set_xticks([i + width for i in range(len(contenders))])
        ax.set_xticklabels(contenders, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")  # W2's contenders span four orders of magnitude
        ax.set_ylabel("seconds (median, log scale)")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    path = sys.argv[1]
    with open(path) as f:
        report = json.load(f)
    out = ["# Benchmarks", "",
           f"Generated by `./run.sh bench` (bench/bench.py; scale {report['scale']}, "
           f"{report['repeat']} repetitions, contenders interleaved within each repetition; "
           f"loads {'cold: page cache dropped before each' if report['cold_loads'] else 'warm'}"
           f"); machine: {report['machine']['cpus']} CPUs, `{report['machine']['uname']}`.  "
           "Times are medians with min–max; *peak extra RSS* is the process's peak above its "
           "RSS before the operation (for saves the state is already in memory).  "
           "Raw data: [bench/results.json](bench/results.json); chart: "
           "[bench/chart.png](bench/chart.png).", ""]
    out += targets(report)
    for name, w in report["workloads"].items():
        out += table(name, w) + [""] + ratios(name, w) + [""]
    notes = os.path.join(HERE, "NOTES.md")
    if os.path.exists(notes):
        with open(notes) as f:
            out += [f.read()]
    with open(os.path.join(os.path.dirname(HERE), "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
    chart(report, os.path.join(os.path.dirname(path), "chart.png"))


if __name__ == "__main__":
    main()
