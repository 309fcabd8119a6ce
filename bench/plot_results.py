"""Plot the committed ResNet-50 benchmark results (bench/results/resnet50_*.json, greenrt-results/1) as PNGs
next to them.

    python bench/plot_results.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import load_results  # noqa: E402

RESULTS = ROOT / "bench/results"


def plot_resnet(path: Path, out_dir: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load_results(path)
    meta, records = data["metadata"], data["records"]
    runners = list(dict.fromkeys(r["runner"] for r in records))  # in the file's order
    big = max(r["batch"] for r in records)

    def value(runner, batch, field):
        rec = next(r for r in records if r["runner"] == runner and r["batch"] == batch)
        return rec[field]

    names = [r.replace(" (reduce-overhead)", "\n(reduce-overhead)").replace(" channels_last", "\nchannels_last")
             for r in runners]
    panels = [("batch-1 latency (ms, lower is better)", [value(r, 1, "latency_ms_p50") for r in runners]),
              (f"batch{big} throughput (img/s)", [value(r, big, "items_per_s") for r in runners]),
              (f"batch{big} energy (mJ/img, lower is better)",
               [1e3 * (value(r, big, "joules_per_item") or 0) for r in runners])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (title, values) in zip(axes, panels):
        bars = ax.bar(range(len(values)), values, color=["#2e8b57", "#999999", "#4477aa"][: len(values)])
        ax.set_xticks(range(len(values)), names, fontsize=8)
        ax.set_title(title, fontsize=10)
        for b, v in zip(bars, values):
            ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.3g}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
    precision = records[0]["precision"]
    fig.suptitle(f"ResNet-50 {precision} on {meta['device']} (torch {meta['versions'].get('torch', '?')}, "
                 f"{meta['date'][:10]})", fontsize=11)
    fig.tight_layout()
    out = (out_dir or path.parent) / path.with_suffix(".png").name
    fig.savefig(out, dpi=110)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, help="where the PNGs go (default: next to the JSON)")
    args = ap.parse_args()
    for path in sorted(RESULTS.glob("resnet50_*.json")):
        if "_ab_" in path.name:  # an A/B of one runner across trees: its numbers are in the README, no plot
            continue
        print("wrote", plot_resnet(path, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
