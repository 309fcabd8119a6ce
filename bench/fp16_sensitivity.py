"""Which op types make an fp16 engine miss its tolerance: rebuild with one op type group kept fp32 at a time.

    python bench/fp16_sensitivity.py --device cuda --models ppocr_det ppocr_rec
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

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
    results = {}
    for name in args.models:
        entry = CORPUS[name]
        path, feeds = entry.export(), entry.inputs()
        refs = [run_onnxruntime(str(path), f) for f in feeds]
        for group in GROUPS:
            build_engine(path, "/tmp/sens.engine", BuildConfig(device=args.device, precision="fp16",
                         layer_precision=group, profiles=[profile_for(feeds)]), log=lambda m: None)
            sess = greenrt.InferenceSession("/tmp/sens.engine", device=args.device)
            worst = 0.0
            for f, ref in zip(feeds, refs):
                outs = sess.run(None, {k: torch.from_numpy(v).to(args.device) for k, v in f.items()})
                for o, r in zip(outs, ref):
                    worst = max(worst, compare_arrays("o", o.float().cpu().numpy(), r, 1e-2, 0).max_rel)
            results.setdefault(name, {})[group or "all fp16"] = worst
            print(f"{name:10s} {group or 'all fp16':70s} max rel err {worst:.3g}")
    Path(args.out).write_text(json.dumps({"device": args.device, "results": results, "torch": torch.__version__,
                                          "command": "python " + " ".join(sys.argv)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
