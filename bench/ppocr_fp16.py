"""PP-OCRv4 detector and recognizer as fp16 engines: plain fp16 vs the accuracy search (--max-error) vs fp32.

    python bench/ppocr_fp16.py --device cuda --out bench/results/ppocr_fp16_h100.json

For each model and engine: max relative error of the logits (the tensor under the final Sigmoid/Softmax) against
onnxruntime fp32 on the corpus feeds (what the search saw) and on held-out rendered text, how often the
probability output makes the same call (DB threshold 0.3 / argmax), how many layers the search kept fp32, and
batch-1 latency (median and p99 of CUDA-event-timed runs) at the first feed's shape. Prediction written before
the run is in bench/NOTES.md. Writes greenrt-results/1 (src/greenrt/tools/results.py): one record per model and
engine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

NOTES = ("Errors on the logits under the final Sigmoid/Softmax against onnxruntime fp32 (CPU): on the corpus feeds "
         "the search saw, and on held-out rendered text (_held_out); same_call: the lowest share of positions where "
         "the probabilities make the same call (DB threshold 0.3 / argmax); search_kept_fp32_layers of search_layers: "
         "what the accuracy search kept fp32 (--max-error: the corpus entry's fp16_max_error, else 5e-3). Latency: "
         "batch 1 at the first feed's shape, {timer}.")


def _latency_ms(session, feeds, device, iters=100) -> tuple[float, float]:
    """(median, p99) in ms through `greenrt bench`'s timer (CUDA events on a GPU, wall clock on the CPU)."""
    from greenrt.tools.bench import Runner, measure_latency

    x = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
    cuda = device == "cuda"
    runner = Runner("greenrt", "", lambda i: session.run_device(x), torch.cuda.synchronize if cuda else (lambda: None),
                    events=cuda)
    for _ in range(10):
        runner.step(0)
    times = measure_latency(runner, budget_s=0.0, min_calls=iters)
    return float(np.median(times)), float(np.percentile(times, 99))


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
    records = []
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
            row = {"build_s": round(build_s, 2)}
            for part, group, group_refs in (("", feeds, refs[:len(feeds)]), ("_held_out", held, refs[len(feeds):])):
                errs, agree = [], []
                for f, ref in zip(group, group_refs):
                    ours = dict(zip(names, session.run(None, f)))
                    ref = dict(zip(names, ref))
                    for prob_name, logit_name in logits.items():
                        o, r = ours[logit_name].astype(np.float32), ref[logit_name]
                        errs.append(float(np.abs(o - r).max() / np.abs(r).max()))
                        agree.append(decision_agreement(ours[prob_name], ref[prob_name]))
                row[f"max_rel_err_vs_onnxruntime_logits{part}"] = max(errs) if errs else None
                row[f"same_call_vs_onnxruntime{part}"] = min(agree) if agree else None
            search = header["report"].get("accuracy_search")
            row["search_kept_fp32_layers"] = search["kept_fp32"] if search else None
            row["search_layers"] = search["layers"] if search else None
            p50, p99 = _latency_ms(session, feeds[0], args.device)
            precision = label.split()[0]
            records.append(make_record(name, f"greenrt engine {label}", precision, 1, args.device,
                                       latency_ms_p50=p50, latency_ms_p99=p99, **row))
            kept = f"{search['kept_fp32']}/{search['layers']}" if search else "-"
            held_err = row["max_rel_err_vs_onnxruntime_logits_held_out"]
            held_call = row["same_call_vs_onnxruntime_held_out"]
            print(f"{name:10s} {label:17s} logits err {row['max_rel_err_vs_onnxruntime_logits']:.2e} / held-out "
                  f"{held_err if held_err is None else f'{held_err:.2e}'}, same call "
                  f"{held_call if held_call is None else f'{held_call:.4f}'}, fp32 kept {kept:8s} {p50:.3f} ms  "
                  f"build {build_s:.1f} s")
    timer = ("median and p99 of 100 CUDA-event-timed runs after 10 warm-up runs" if args.device == "cuda"
             else "median and p99 of 100 wall-clock-timed runs after 10 warm-up runs")
    meta = collect_metadata(command_line(), device=args.device, notes=NOTES.format(timer=timer))
    print("wrote", write_results(args.out, meta, records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
