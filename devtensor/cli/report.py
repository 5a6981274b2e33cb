"""Output of `devtensor bench`: terminal tables (rich when installed, plain text otherwise),
JSON, CSV, Markdown, and a PNG with per-device bar charts and a roofline.

Everything here reads the results document that bench.run builds (the JSON schema in
bench_schema.json); nothing here times anything.
"""
from __future__ import annotations

import csv
import json
import sys
import textwrap

from ..bench.timing import fmt_time

BASELINE_ORDER = ("numpy", "torch", "cupy")
BUSY = "the machine was busy"
INTERRUPTED = "interrupted after"
CONTENDED = 0.10  # other processes' share of the CPUs above which a record is flagged


# ---- numbers as text ----------------------------------------------------------------------------

def _rate(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _pct(v):
    return "-" if v is None else f"{v:.0f}%" if v >= 10 else f"{v:.1f}%"


def _status(skip):
    return {"memory": "skipped (memory)", "error": "ERROR", "n/a": "n/a"}.get(skip["kind"], skip["kind"])


# ---- the table model ----------------------------------------------------------------------------

def table_rows(doc, device):
    """(header, rows) for one device: one row per case, devtensor's numbers then each baseline."""
    recs = [r for r in doc["records"] if r["device"] == device]
    skips = [s for s in doc["skipped"] if s["device"] == device]
    keys = []
    for item in recs + skips:
        k = (item["op"], item["case"])
        if k not in keys:
            keys.append(k)
    order = {op: i for i, op in enumerate(doc["settings"]["ops"])}
    keys.sort(key=lambda k: order.get(k[0], len(order)))  # stable: keeps sizes ascending
    rec = {(r["op"], r["case"], r["impl"]): r for r in recs}
    skip = {(s["op"], s["case"], s["impl"]): s for s in skips}
    baselines = [b for b in BASELINE_ORDER if any(r["impl"] == b for r in recs)]
    show_peak = any(r.get("pct_peak") is not None for r in recs)
    show_copy = any(r.get("pct_copy_bw") is not None for r in recs)
    header = ["op", "case", "devtensor", "spread", "1st call +", "GFLOP/s", "GB/s"]
    header += ["% peak"] * show_peak + ["% copy BW"] * show_copy
    for b in baselines:
        header += [b, f"vs {b}"]
    rows = []
    for op, case in keys:
        r = rec.get((op, case, "devtensor"))
        if r is not None:
            spread = (r["max_s"] - r["min_s"]) / r["median_s"] * 100 if r["median_s"] > 0 else 0.0
            first = fmt_time(r["compile_s"]) if r["compile_s"] > max(1e-3, r["median_s"]) else "-"
            flag = "!" if (r.get("contention") or 0) > CONTENDED else ""
            row = [op, case, fmt_time(r["median_s"]), f"{spread:.0f}%{flag}", first, _rate(r["gflops"]),
                   _rate(r["gbps"])]
            row += [_pct(r["pct_peak"])] * show_peak + [_pct(r["pct_copy_bw"])] * show_copy
        else:
            s = skip.get((op, case, "devtensor"))
            row = [op, case, _status(s) if s else "-", "", "", "", ""] + [""] * (show_peak + show_copy)
        for b in baselines:
            br = rec.get((op, case, b))
            if br is None:
                s = skip.get((op, case, b))
                row += [_status(s) if s else "-", ""]
            else:
                sp = r["speedup_vs"].get(b) if r is not None else None
                flag = "!" if (br.get("contention") or 0) > CONTENDED else ""
                row += [fmt_time(br["median_s"]) + flag, "-" if sp is None else f"{sp:.2f}x"]
        rows.append(row)
    return header, rows


def device_title(doc, device):
    d = doc["devices"].get(device, {})
    parts = [f"{device}: {d.get('name', device)}"]
    if d.get("logical_cores"):
        parts.append(f"{d['logical_cores']} logical cores")
    if d.get("compute_capability"):
        parts.append(f"compute capability {d['compute_capability']}")
    if d.get("measured_copy_gbps"):
        parts.append(f"measured copy {d['measured_copy_gbps']:.1f} GB/s")
    p = d.get("peak")
    if p:
        parts.append(f"peak ({p['model']}): FP32 {p['fp32_tflops']} / TF32 {p['tf32_tflops']} TFLOP/s, "
                     f"memory {p['mem_gbps']:,.0f} GB/s")
    return ", ".join(parts)


def _devices_in_order(doc):
    seen = [d for d in doc["settings"]["devices"]]
    return [d for d in seen if any(r["device"] == d for r in doc["records"] + doc["skipped"])]


LEGEND = ("devtensor/spread/1st call +: median time, (max - min) / median of the repeats, the first call's "
          "extra time (compilation) when it matters; vs X: X's time / devtensor's (above 1: devtensor faster); "
          "% peak: of the datasheet roofline; % copy BW: GB/s against the copy bandwidth measured at start; "
          "! after a time or spread: other processes used more than 10% of the CPUs while it was timed.")


# ---- terminal -----------------------------------------------------------------------------------

def _plain(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    left = {0, 1}
    fmt = lambda cells: "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [fmt(header), "  ".join("-" * w for w in widths)]
    out += [fmt(r) for r in rows]
    return "\n".join(out)


def print_tables(doc, file):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    for dev in _devices_in_order(doc):
        header, rows = table_rows(doc, dev)
        if Console is not None:
            t = Table(title=device_title(doc, dev), title_justify="left")
            for i, h in enumerate(header):
                t.add_column(h, justify="left" if i < 2 else "right", no_wrap=i != 1)
            for r in rows:
                t.add_row(*map(str, r))
            # not a terminal (a pipe, a file): rich would wrap at 80 columns and squash the table
            Console(file=file, width=None if file.isatty() else 200).print(t)
        else:
            print(device_title(doc, dev), file=file)
            print(_plain(header, rows), file=file)
            print(file=file)
    print(textwrap.fill(LEGEND, 110), file=file)


def print_list(tasks, notes, file=None):
    file = file or sys.stdout
    rows, seen = [], {}
    for case, dev, impl in tasks:
        key = (case.op, case.label, dev)
        if key not in seen:
            seen[key] = [case.op, case.label, case.tier, dev, case.shape, impl]
            rows.append(seen[key])
        else:
            seen[key][5] += f",{impl}"
    print(_plain(["op", "case", "tier", "device", "shape", "implementations"], rows), file=file)
    print(f"\n{len(tasks)} tasks", file=file)
    for n in notes:
        print(f"note: {n}", file=file)


# ---- files --------------------------------------------------------------------------------------

def _open_out(path):
    return _StdoutNoClose() if path == "-" else open(path, "w", newline="", encoding="utf-8")


class _StdoutNoClose:
    """sys.stdout as a context manager that is not closed on exit."""

    def __enter__(self):
        return sys.stdout

    def __exit__(self, *exc):
        sys.stdout.flush()
        return False


def write_json(doc, path):
    with _open_out(path) as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")


CSV_FIELDS = ("op", "case", "tier", "device", "impl", "dtype", "shape", "median_s", "min_s", "max_s", "repeats",
              "first_call_s", "compile_s", "flops", "bytes", "gflops", "gbps", "pct_peak", "pct_copy_bw", "contention")


def write_csv(doc, path):
    with _open_out(path) as f:
        w = csv.writer(f)
        w.writerow([*CSV_FIELDS, *(f"speedup_vs_{b}" for b in BASELINE_ORDER), "note"])
        for r in doc["records"]:
            w.writerow([("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS]
                       + [r["speedup_vs"].get(b, "") for b in BASELINE_ORDER] + [r.get("note", "")])


def markdown(doc):
    env = doc["env"]
    v = env["versions"]
    lines = [f"Measured {env['date'][:16].replace('T', ' ')} UTC with `{doc['command']}`; devtensor {v['devtensor']}, "
             f"Python {v['python'].split()[0]}, numpy {v['numpy']} ({env['blas']['name']}, "
             f"{env['blas']['threads']} threads), numba {v['numba']} ({env.get('numba_threads')} threads), "
             f"PyTorch {v.get('torch') or 'not installed'}"
             f"{' (%s threads)' % v['torch_threads'] if v.get('torch_threads') else ''}, "
             f"CuPy {v.get('cupy') or 'not installed'}; {env['machine']['cpu']}, "
             f"{env['machine']['logical_cores']} logical cores. Median of {doc['settings']['repeats']} repeats.", ""]
    for dev in _devices_in_order(doc):
        header, rows = table_rows(doc, dev)
        lines += [f"**{device_title(doc, dev)}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        lines.append("")
    lines.append(LEGEND)
    return "\n".join(lines) + "\n"


def write_markdown(doc, path):
    with _open_out(path) as f:
        f.write(markdown(doc))


# ---- the plot -----------------------------------------------------------------------------------

_MARKERS = {"devtensor": "o", "numpy": "s", "torch": "^", "cupy": "D"}
_COLORS = {"devtensor": "tab:blue", "numpy": "tab:orange", "torch": "tab:red", "cupy": "tab:green"}


def write_plot(doc, path):
    """Bars of median time per case, one panel per device (log scale: ops span microseconds to
    seconds), and a roofline of every record that has both a FLOP and a byte count."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    devices = _devices_in_order(doc) or doc["settings"]["devices"]
    recs = doc["records"]
    keys = []
    for r in recs:
        if (r["op"], r["case"]) not in keys:
            keys.append((r["op"], r["case"]))
    impls = [i for i in ("devtensor", *BASELINE_ORDER) if any(r["impl"] == i for r in recs)] or ["devtensor"]
    height = max(9.0, 0.09 * max(1, len(keys)) * len(impls) + 1.5)
    fig = Figure(figsize=(6.5 * (len(devices) + 1), height))
    FigureCanvasAgg(fig)
    # bars take one full-height column per device; the last column holds the roofline (square,
    # at the top) and the legend with what was run
    gs = fig.add_gridspec(2, len(devices) + 1, height_ratios=[6.5, max(1.0, height - 6.5)])
    ylabels = [f"{op}: {case}" for op, case in keys]
    bar_h = 0.8 / len(impls)
    for j, dev in enumerate(devices):
        ax = fig.add_subplot(gs[:, j])
        for k, impl in enumerate(impls):
            ys, xs = [], []
            for i, key in enumerate(keys):
                r = next((r for r in recs if (r["op"], r["case"]) == key and r["device"] == dev
                          and r["impl"] == impl), None)
                if r is not None:
                    ys.append(i + (k - (len(impls) - 1) / 2) * bar_h)
                    xs.append(r["median_s"])
            if xs:
                ax.barh(ys, xs, height=bar_h, color=_COLORS.get(impl), label=impl)
        ax.set_xscale("log")
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels(ylabels if j == 0 else [""] * len(keys), fontsize=7)
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_xlabel("median time per call (s, log scale; shorter is better)")
        ax.set_title(device_title(doc, dev)[:80], fontsize=9)
        ax.grid(axis="x", which="both", alpha=0.3)
    _roofline(fig.add_subplot(gs[0, len(devices)]), doc, devices)
    _legend_panel(fig.add_subplot(gs[1, len(devices)]), doc, impls)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _legend_panel(ax, doc, impls):
    from matplotlib.patches import Patch

    ax.axis("off")
    ax.legend(handles=[Patch(color=_COLORS.get(i, "gray"), label=i) for i in impls], loc="upper left",
              fontsize=9, title="bars")
    env, v = doc["env"], doc["env"]["versions"]
    text = [f"devtensor bench, {env['date'][:16].replace('T', ' ')} UTC", textwrap.fill(doc["command"], 70),
            f"devtensor {v['devtensor']}, numpy {v['numpy']}, numba {v['numba']}, torch {v.get('torch') or '-'}, "
            f"cupy {v.get('cupy') or '-'}", f"{env['machine']['cpu']}, {env['machine']['logical_cores']} logical cores"]
    ax.text(0.0, 0.0, "\n".join(text), transform=ax.transAxes, fontsize=8, va="bottom", family="monospace")


def _roofline(ax, doc, devices):
    import numpy as np

    recs = [r for r in doc["records"] if r["flops"] and r["bytes"] and r["gflops"]]
    styles = ["-", "--", ":", "-."]
    ais = [r["flops"] / r["bytes"] for r in recs] or [0.1, 10.0]
    x = np.logspace(np.log10(min(ais) / 2), np.log10(max(ais) * 2), 200)
    for j, dev in enumerate(devices):
        d = doc["devices"].get(dev, {})
        peak = d.get("peak")
        bw = peak["mem_gbps"] if peak else d.get("measured_copy_gbps")
        bw_label = "datasheet memory BW" if peak else "measured copy BW"
        mine = [r for r in recs if r["device"] == dev]
        if peak:
            top, top_label = peak["fp32_tflops"] * 1e3, f"FP32 peak ({peak['model']})"
        else:
            mm = [r["gflops"] for r in mine if r["op"] == "matmul"]
            top, top_label = (max(mm), "best measured matmul") if mm else (None, "")
        ls = styles[j % len(styles)]
        if bw:
            roof = x * bw if top is None else np.minimum(x * bw, top)
            ax.plot(x, roof, color="black", linestyle=ls, linewidth=1,
                    label=f"{dev}: {bw_label} {bw:,.0f} GB/s" + (f", {top_label} {top:,.0f} GFLOP/s" if top else ""))
        for r in mine:
            ax.scatter(r["flops"] / r["bytes"], r["gflops"], marker=_MARKERS.get(r["impl"], "x"),
                       color=_COLORS.get(r["impl"], "gray"), s=14, alpha=0.8 if r["impl"] == "devtensor" else 0.45)
    for impl, m in _MARKERS.items():
        if any(r["impl"] == impl for r in recs):
            ax.scatter([], [], marker=m, color=_COLORS[impl], label=impl)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("roofline (every record with FLOPs and bytes)", fontsize=9)
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


# ---- everything at the end of a run -------------------------------------------------------------

def emit(doc, args) -> int:
    """Print the tables and the skip summary, write the requested files; return the exit status."""
    to_stdout = "-" in (args.json, args.csv, args.markdown)
    print_tables(doc, sys.stderr if to_stdout else sys.stdout)
    if args.json:
        write_json(doc, args.json)
    if args.csv:
        write_csv(doc, args.csv)
    if args.markdown:
        write_markdown(doc, args.markdown)
    if args.plot:
        write_plot(doc, args.plot)
    for n in doc["notes"]:
        if not n.startswith((BUSY, INTERRUPTED)):  # those were printed when they happened
            print(f"note: {n}", file=sys.stderr)
    mem = [s for s in doc["skipped"] if s["kind"] == "memory"]
    errors = [s for s in doc["skipped"] if s["kind"] == "error"]
    for s in mem:
        print(f"note: skipped {s['op']} {s['case']} [{s['device']} {s['impl']}]: {s['reason']}", file=sys.stderr)
    if errors:
        print(f"devtensor bench: {len(errors)} task(s) failed (the others were measured and written):",
              file=sys.stderr)
        for s in errors:
            print(f"  {s['op']} {s['case']} [{s['device']} {s['impl']}]: {s['reason']}", file=sys.stderr)
        return 1
    return 0
