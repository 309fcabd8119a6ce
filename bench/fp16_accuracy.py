"""fp16 / bf16 engines vs the fp32 engine on real photo crops (EfficientNet-Lite0, ImageNet weights).

    python bench/fp16_accuracy.py --device cuda --out bench/results/efficientnet_lite0_precision.json

Reports top-1 agreement with fp32 on all crops and on the crops where fp32's top-1 probability >= 0.5, and the
max relative logit error; targets from the engine-builder issue: >= 98% and 100%, max rel err <= 1e-2 (fp16).
Writes greenrt-results/1 (src/greenrt/tools/results.py): one record per reduced precision.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402


def main() -> int:
    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from greenrt.zoo import efficientnet_lite as e

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=str(ROOT / "bench/results/efficientnet_lite0_precision.json"))
    args = ap.parse_args()
    crops = e.photo_crops(per_photo=32)
    n = len(crops)
    onnx_path = e.export()
    profile = parse_profile(f"image:1x3x224x224/32x3x224x224/{n}x3x224x224")
    logits = {}
    for precision in ("fp32", "fp16", "bf16"):
        path = Path(f"/tmp/el0_{precision}.engine")
        build_engine(onnx_path, path, BuildConfig(device=args.device, precision=precision, profiles=[profile]),
                     log=lambda m: None)
        sess = greenrt.InferenceSession(path, device=args.device)
        logits[precision] = sess.run(None, {"image": torch.from_numpy(crops).to(args.device)})[0].float().cpu()
    ref = logits["fp32"]
    prob = ref.softmax(-1)
    confident = prob.max(-1).values >= 0.5
    records = []
    for precision in ("fp16", "bf16"):
        got = logits[precision]
        agree = got.argmax(-1) == ref.argmax(-1)
        row = {
            "top1_agreement_vs_fp32": float(agree.float().mean()),
            "top1_agreement_vs_fp32_confident": float(agree[confident].float().mean()) if confident.any() else None,
            "max_rel_err_vs_fp32": float((got - ref).abs().max() / ref.abs().max()),
        }
        records.append(make_record("efficientnet_lite0", f"greenrt engine {precision}", precision, n, args.device,
                                   timed=False, items=n, confident_items=int(confident.sum()), weights="ImageNet",
                                   **row))
        print(f"{precision}: top-1 agreement {row['top1_agreement_vs_fp32']:.4f} on {n} crops, "
              f"{row['top1_agreement_vs_fp32_confident']} on {int(confident.sum())} confident, "
              f"max rel err {row['max_rel_err_vs_fp32']:.2e}")
    notes = (f"fp16 and bf16 engines against the fp32 engine on {n} real photo crops (the photos bundled with "
             "scikit-image, one batch): top-1 agreement on all crops, on the crops where fp32's top-1 probability is "
             ">= 0.5 (_confident, confident_items of them), and the max relative logit error.")
    meta = collect_metadata(command_line(), device=args.device, notes=notes)
    print("wrote", write_results(args.out, meta, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
