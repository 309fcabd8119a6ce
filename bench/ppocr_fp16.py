"""PP-OCRv4 detector and recognizer as fp16 engines: plain fp16 vs the accuracy search (--max-error) vs fp32.

    python bench/ppocr_fp16.py --device cuda --out bench/results/ppocr_fp16_h100.json

For each model and engine: max relative error of the logits (the tensor under the final Sigmoid/Softmax) against
onnxruntime fp32 on the corpus feeds (what the search saw) and on held-out rendered text, how often the
probability output makes the same call (DB threshold 0.3 / argmax), how many layers the search kept fp32, and
batch-1 latency (median of CUDA-event-timed runs) at the first feed's shape. Prediction written before the run
is in bench/NOTES.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def _latency_ms(session, feeds, device, iters=100) -> float:
    x = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
    if device == "cuda":
        from resnet50_engine import latency_ms  # the CUDA-event timing the ResNet-50 benchmark uses

        return latency_ms(session.run_device, x, warmup=10, iters=iters)
    for _ in range(10):
        session.run(None, x)
    t0 = time.perf_counter()
    for _ in range(iters):
        session.run(None, x)
    return (time.perf_counter() - t0) / iters * 1e3


def main() -> int:
    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.tools.compare import run_onnxruntime
    from greenrt.zoo.corpus import CORPUS, decision_agreement, probability_logits, profile_for

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["ppocr_det", "ppocr_rec"])
    ap.add_argument("--out", default=str(ROOT / "bench/results/ppocr_fp16.json"))
    args = ap.parse_args()
    rows = []
    for name in args.models:
        entry = CORPUS[name]
        path, feeds = entry.export(), entry.inputs()
        held = entry.holdout() if entry.holdout else []
        logits = probability_logits(path)
        logit_names = list(logits.values())
        refs = [run_onnxruntime(str(path), f, extra_outputs=logit_names) for f in feeds + held]
        profile = profile_for(feeds + held)
        variants = [("fp32", BuildConfig(device=args.device, outputs=logit_names, profiles=[profile])),
                    ("fp16", BuildConfig(device=args.device, precision="fp16", outputs=logit_names, profiles=[profile])),
                    ("fp16 --max-error", BuildConfig(device=args.device, precision="fp16", outputs=logit_names,
                                                     profiles=[profile], max_error=entry.fp16_max_error or 5e-3,
                                                     error_outputs=logit_names))]
        for label, config in variants:
            engine = Path(f"/tmp/{name}.engine")
            t0 = time.perf_counter()
            header = build_engine(path, engine, config, log=lambda m: None,
                                  samples=feeds if config.max_error else None)
            build_s = time.perf_counter() - t0
            session = greenrt.InferenceSession(engine, device=args.device)
            names = [o.name for o in session.get_outputs()]
            row = {"model": name, "engine": label, "build_s": round(build_s, 2)}
            for part, group, group_refs in (("searched", feeds, refs[:len(feeds)]), ("held_out", held, refs[len(feeds):])):
                errs, agree = [], []
                for f, ref in zip(group, group_refs):
                    ours = dict(zip(names, session.run(None, f)))
                    ref = dict(zip(names, ref))
                    for prob_name, logit_name in logits.items():
                        o, r = ours[logit_name].astype(np.float32), ref[logit_name]
                        errs.append(float(np.abs(o - r).max() / np.abs(r).max()))
                        agree.append(decision_agreement(ours[prob_name], ref[prob_name]))
                row[f"logits_max_rel_err_{part}"] = max(errs) if errs else None
                row[f"same_call_{part}"] = min(agree) if agree else None
            search = header["report"].get("accuracy_search")
            row["kept_fp32"] = f"{search['kept_fp32']}/{search['layers']}" if search else ""
            row["latency_ms_b1"] = round(_latency_ms(session, feeds[0], args.device), 3)
            rows.append(row)
            print(f"{name:10s} {label:17s} logits err {row['logits_max_rel_err_searched']:.2e} / held-out "
                  f"{row['logits_max_rel_err_held_out']:.2e}, same call {row['same_call_held_out']:.4f}, "
                  f"fp32 kept {row['kept_fp32'] or '-':8s} {row['latency_ms_b1']:.3f} ms  build {build_s:.1f} s")
    device = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    Path(args.out).write_text(json.dumps({
        "device": device, "torch": torch.__version__, "greenrt": greenrt.__version__, "batch": 1,
        "command": "python " + " ".join(sys.argv), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
