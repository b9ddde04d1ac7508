#!/usr/bin/env python3
"""Draws the results of bench/compare-garage.sh as one self-contained SVG.

    bench/plot-compare.py OUT_DIR NODES SVG_FILE [TITLE]

Reads OUT_DIR/{hangar,garage}-nodesN-WORKLOAD.json (hangar-bench --json summaries) and
draws four panels, Hangar beside Garage: large-object throughput (MiB/s), small-object
ops/s at c=16, small-object p50 latency at c=1, and the time to list every key. Values are
printed on the bars; the ops/s and latency panels use a log scale because the two systems
differ by more than an order of magnitude there. Standard library only (no plotting
package to install).
"""
import json
import math
import os
import sys
from xml.sax.saxutils import escape

SYSTEMS = [("hangar", "Hangar", "#2b6cb0"), ("garage", "Garage 2.5.0", "#dd8a2e")]


def load(out_dir, system, nodes, workload):
    path = os.path.join(out_dir, f"{system}-nodes{nodes}-{workload}.json")
    if not os.path.exists(path):
        return None
    rows = [r for r in json.load(open(path))["rows"] if r["phase"] != "fill"]
    return rows[0] if rows else None


def list_workload(out_dir, nodes):
    for name in sorted(os.listdir(out_dir)):
        prefix = f"hangar-nodes{nodes}-list-"
        if name.startswith(prefix) and name.endswith(".json"):
            return name[len("hangar-nodes%s-" % nodes):-len(".json")]
    return None


def panel(x0, y0, w, h, title, unit, groups, log=False):
    """groups: [(label, [value or None per system], [errors per system])]; returns SVG
    elements. A bar whose run had errors says how many: its rate counts only successes."""
    out = [f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" '
           f'font-weight="bold">{escape(title)}</text>']
    values = [v for _, vs, _ in groups for v in vs if v]
    if not values:
        return out
    top = max(values) * 1.15
    low = min(values) / 2 if log else 0

    def height(v):
        if log:
            return h * (math.log10(v) - math.log10(low)) / (math.log10(top) - math.log10(low))
        return h * v / top

    out.append(f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#444"/>')
    slot = w / len(groups)
    bar = slot / (len(SYSTEMS) + 1)
    for gi, (label, vs, errs) in enumerate(groups):
        gx = x0 + gi * slot + bar / 2
        for si, v in enumerate(vs):
            if not v:
                continue
            bh = max(height(v), 1)
            bx = gx + si * bar
            out.append(f'<rect x="{bx:.1f}" y="{y0 + h - bh:.1f}" width="{bar * 0.9:.1f}" '
                       f'height="{bh:.1f}" fill="{SYSTEMS[si][2]}"/>')
            text = f"{v:.3g}" if v < 100 else f"{v:.0f}"
            if errs[si]:
                text += f" ({errs[si]} errors)"
            out.append(f'<text x="{bx + bar * 0.45:.1f}" y="{y0 + h - bh - 3:.1f}" '
                       f'text-anchor="middle" font-size="10">{text}</text>')
        out.append(f'<text x="{x0 + gi * slot + slot / 2:.1f}" y="{y0 + h + 14}" '
                   f'text-anchor="middle" font-size="11">{escape(label)}</text>')
    out.append(f'<text x="{x0 - 8}" y="{y0 + h / 2}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 {x0 - 8} {y0 + h / 2})">'
               f'{escape(unit)}{" (log)" if log else ""}</text>')
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: plot-compare.py OUT_DIR NODES SVG_FILE [TITLE]")
    out_dir, nodes, svg_file = sys.argv[1], sys.argv[2], sys.argv[3]
    title = sys.argv[4] if len(sys.argv) > 4 else (
        "Hangar and Garage, one node, loopback" if nodes == "1"
        else f"Hangar and Garage, {nodes} nodes (RF 3), loopback")

    def metric(workload, key):
        rows = [load(out_dir, s, nodes, workload) or {} for s, _, _ in SYSTEMS]
        return [r.get(key) for r in rows], [r.get("errors", 0) for r in rows]

    listing = list_workload(out_dir, nodes)
    panels = [
        ("Large objects, 1 MiB, c=8", "MiB/s", False,
         [("PUT", *metric("put-1MiB-c8", "mib_per_s")), ("GET", *metric("get-1MiB-c8", "mib_per_s"))]),
        ("Small objects, 4 KiB, c=16", "ops/s", True,
         [("PUT", *metric("put-4KiB-c16", "ops_per_s")), ("GET", *metric("get-4KiB-c16", "ops_per_s"))]),
        ("Small objects, 4 KiB, c=1: p50", "ms", True,
         [("PUT", *metric("put-4KiB-c1", "p50_ms")), ("GET", *metric("get-4KiB-c1", "p50_ms"))]),
    ]
    if listing:
        keys = listing[len("list-"):-len("keys")]
        panels.append((f"Listing {int(keys):,} keys (whole prefix), p50", "s", False,
                       [("LIST", [v / 1000 if v else None for v in metric(listing, "p50_ms")[0]],
                         metric(listing, "p50_ms")[1])]))
    width, ph, pw = 880, 170, 360
    rows = (len(panels) + 1) // 2
    height = 70 + rows * (ph + 70)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15" '
           f'font-weight="bold">{escape(title)}</text>']
    for i, (_, name, color) in enumerate(SYSTEMS):
        svg.append(f'<rect x="{width / 2 - 120 + i * 130}" y="32" width="12" height="12" fill="{color}"/>')
        svg.append(f'<text x="{width / 2 - 104 + i * 130}" y="43">{escape(name)}</text>')
    for i, (t, unit, log, groups) in enumerate(panels):
        x0 = 70 + (i % 2) * (pw + 80)
        y0 = 80 + (i // 2) * (ph + 70)
        svg += panel(x0, y0, pw, ph, t, unit, groups, log)
    svg.append("</svg>")
    with open(svg_file, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
