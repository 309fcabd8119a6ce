"""Graph simplification vs onnxslim on the corpus: node counts of the ONNX file, after onnxslim, after greenrt's
simplifying passes alone (no-op removal, constant/shape folding, dead code) and after the whole pipeline (fusions).

    python bench/node_counts.py --out bench/results/node_counts_vs_onnxslim.json

Writes greenrt-results/1 (src/greenrt/tools/results.py): one record per model and graph (the export, onnxslim's,
greenrt's simplifying passes, greenrt's whole pipeline) with its node count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

RUNNERS = {"onnx": "onnx export", "onnxslim": "onnxslim", "greenrt_simplify": "greenrt simplifying passes",
           "greenrt_full": "greenrt all passes"}
NOTES = ("Graph node counts of each corpus export: the ONNX file as exported, after onnxslim, after greenrt's "
         "simplifying passes alone (no-op removal, constant/shape folding, Reshape simplification, dead code, Pad into "
         "Conv) and after greenrt's whole pass list (with fusions). Device-independent (no device).")


def main() -> int:
    import onnx
    import onnxslim

    from greenrt.onnx.importer import load_model
    from greenrt.passes import optimize
    from greenrt.passes.dead_code import EliminateDeadCode
    from greenrt.passes.fold_constants import FoldConstants
    from greenrt.passes.fold_pad_into_conv import FoldPadIntoConv
    from greenrt.passes.simplify_reshape import SimplifyReshape
    from greenrt.passes.remove_noops import RemoveNoops
    from greenrt.zoo.corpus import CORPUS

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench/results/node_counts_vs_onnxslim.json"))
    ap.add_argument("--models", nargs="*", default=[n for n, e in CORPUS.items() if not e.heavy])
    args = ap.parse_args()
    records = []
    for name in args.models:
        path = CORPUS[name].export()
        original = onnx.load(str(path))
        slim = onnxslim.slim(onnx.load(str(path)))
        simple = load_model(path)
        optimize(simple, [RemoveNoops(), FoldConstants(), SimplifyReshape(), EliminateDeadCode(), FoldConstants(),
                          FoldPadIntoConv(), EliminateDeadCode()])
        full = load_model(path)
        optimize(full)
        row = {"model": name, "onnx": len(original.graph.node), "onnxslim": len(slim.graph.node),
               "greenrt_simplify": simple.graph.num_nodes(), "greenrt_full": full.graph.num_nodes()}
        records += [make_record(name, runner, None, None, None, timed=False, nodes=row[key])
                    for key, runner in RUNNERS.items()]
        print(f"{name:28s} onnx {row['onnx']:5d}  onnxslim {row['onnxslim']:5d}  greenrt simplify "
              f"{row['greenrt_simplify']:5d}  greenrt full {row['greenrt_full']:5d}")
    meta = collect_metadata(command_line(), device=None, notes=NOTES)
    print("wrote", write_results(args.out, meta, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
