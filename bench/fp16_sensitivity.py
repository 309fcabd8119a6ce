"""Which op types make an fp16 engine miss its tolerance: rebuild with one op type group kept fp32 at a time.

    python bench/fp16_sensitivity.py --device cuda --models ppocr_det ppocr_rec

Writes greenrt-results/1 (src/greenrt/tools/results.py): one record per model and op group kept fp32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

GROUPS = ["", "FusedConv=fp32,Conv=fp32", "Resize=fp32", "ConvTranspose=fp32", "Sigmoid=fp32,HardSigmoid=fp32",
          "HardSwish=fp32", "Mul=fp32", "Add=fp32", "Concat=fp32", "GlobalAveragePool=fp32,ReduceMean=fp32",
          "Softmax=fp32,MatMul=fp32,FusedMatMul=fp32,ScaledDotProductAttention=fp32",
          "LayerNormalization=fp32,BatchNormalization=fp32"]


def main() -> int:
    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.tools.compare import compare_arrays, run_onnxruntime
    from greenrt.zoo.corpus import CORPUS, profile_for

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["ppocr_det", "ppocr_rec"])
    ap.add_argument("--out", default=str(ROOT / "bench/results/fp16_sensitivity.json"))
    args = ap.parse_args()
    records = []
    for name in args.models:
        entry = CORPUS[name]
        path, feeds = entry.export(), entry.inputs()
        refs = [run_onnxruntime(str(path), f) for f in feeds]
        batches = {v.shape[0] for f in feeds for v in f.values() if v.ndim}
        batch = batches.pop() if len(batches) == 1 else None  # the feeds' leading dim where they share one
        for group in GROUPS:
            build_engine(path, "/tmp/sens.engine", BuildConfig(device=args.device, precision="fp16",
                         layer_precision=group, profiles=[profile_for(feeds)]), log=lambda m: None)
            sess = greenrt.InferenceSession("/tmp/sens.engine", device=args.device)
            worst = 0.0
            for f, ref in zip(feeds, refs):
                outs = sess.run(None, {k: torch.from_numpy(v).to(args.device) for k, v in f.items()})
                for o, r in zip(outs, ref):
                    worst = max(worst, compare_arrays("o", o.float().cpu().numpy(), r, 1e-2, 0).max_rel)
            runner = "greenrt engine fp16" + (f" --layer-precision {group}" if group else "")
            records.append(make_record(name, runner, "fp16", batch, args.device, timed=False,
                                       max_rel_err_vs_onnxruntime=worst, layer_precision=group))
            print(f"{name:10s} {group or 'all fp16':70s} max rel err {worst:.3g}")
    notes = ("Each engine rebuilt with one group of op types kept fp32 (layer_precision, '' = all fp16); max relative "
             "error of every output against onnxruntime fp32 over the corpus feeds (batch: their leading dim where "
             "they share one).")
    meta = collect_metadata(command_line(), device=args.device, notes=notes)
    print("wrote", write_results(args.out, meta, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
