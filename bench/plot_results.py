"""Plot the committed benchmark JSON (bench/results/*.json) as PNGs next to them.

    python bench/plot_results.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def plot_resnet(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(path.read_text())
    rows = data["rows"]
    names = [r["runner"].replace(" (reduce-overhead)", "\n(reduce-overhead)").replace(" channels_last", "\nchannels_last")
             for r in rows]
    big = [k for k in rows[0] if k.startswith("batch") and k != "batch1_latency_ms"][0]
    panels = [("batch-1 latency (ms, lower is better)", [r["batch1_latency_ms"] for r in rows]),
              (f"{big} throughput (img/s)", [r[big]["items_per_s"] for r in rows]),
              (f"{big} energy (mJ/img, lower is better)", [r[big].get("mJ_per_item", 0) for r in rows])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (title, values) in zip(axes, panels):
        bars = ax.bar(range(len(values)), values, color=["#2e8b57", "#999999", "#4477aa"][: len(values)])
        ax.set_xticks(range(len(values)), names, fontsize=8)
        ax.set_title(title, fontsize=10)
        for b, v in zip(bars, values):
            ax.annotate(f"{v:,.0f}" if v >= 100 else f"{v:.3g}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                        fontsize=8)
    fig.suptitle(f"ResNet-50 {data['precision']} on {data['device']} (torch {data['versions']['torch']}, "
                 f"{data['date']})", fontsize=11)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    return out


def main() -> int:
    for path in sorted(RESULTS.glob("resnet50_*.json")):
        print("wrote", plot_resnet(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
