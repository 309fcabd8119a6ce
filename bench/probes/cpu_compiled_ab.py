"""The CPU engine on greenrt's executor (--opt-level 3) against the same engine compiled by Inductor (--opt-level 4,
where its timing keeps it), with onnxruntime, batch 1, in interleaved rounds in one process (the 2-core box's speed
drifts: compare within a round; the median of the per-round ratios is reported).

    python bench/probes/cpu_compiled_ab.py --out bench/results/cpu_compiled_ab.json [--models resnet50,...]
    python bench/probes/cpu_compiled_ab.py --precision bf16 --out bench/results/cpu_bf16_ab.json   # bf16 engines

onnxruntime runs the fp32 model either way (the baseline a user has); a reduced-precision engine's error against it
is in each record.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.cpu_engine_ab import _median_ms  # noqa: E402  (the same timing as the other CPU A/B)
from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

MODELS = ("resnet50", "mobilenet_v3_large", "efficientnet_lite0")


def _export(name: str, folder: Path) -> Path:
    path = folder / f"{name}.onnx"
    subprocess.run([sys.executable, str(ROOT / "bench" / "suite_models.py"), name, str(path)], check=True)
    return path


def main() -> int:
    import onnxruntime as ort
    import torch

    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    records = []
    for name in args.models.split(","):
        path = _export(name, folder)
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        ort_sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        ref = ort_sess.run(None, {"image": x})[0]
        runners, build = {"onnxruntime": lambda: ort_sess.run(None, {"image": x})}, {}
        errors = {}
        for level in (3, 4):
            engine = folder / f"{name}_o{level}.engine"
            t0 = time.perf_counter()
            header = build_engine(path, engine, BuildConfig(opt_level=level, precision=args.precision, profiles=[
                parse_profile("image:1x3x224x224/1x3x224x224/8x3x224x224")]), log=lambda m: None)
            label = f"greenrt engine --opt-level {level}" + ("" if args.precision == "fp32" else f" --{args.precision}")
            choice = header["report"]["tactics"].get("engine", {})
            build[label] = {"build_seconds": round(time.perf_counter() - t0, 1), "engine_choice": choice}
            sess = greenrt.InferenceSession(engine)
            t0 = time.perf_counter()
            out = sess.run(None, {"image": x})[0]  # the compiled engine compiles at its first run
            build[label]["first_run_seconds"] = round(time.perf_counter() - t0, 2)
            errors[label] = float(np.abs(out - ref).max() / np.abs(ref).max())
            runners[label] = (lambda s: lambda: s.run(None, {"image": x}))(sess)
            print(f"{name} {label}: engine {choice.get('winner')} {choice.get('timings_ms')}", flush=True)
        rows = {k: [] for k in runners}
        for _ in range(args.rounds):
            for label, fn in runners.items():
                rows[label].append(_median_ms(fn, args.runs))
        base = np.array(rows["onnxruntime"])
        for label, v in rows.items():
            ratio = float(np.median(np.array(v) / base))
            extra = {"max_rel_err_vs_onnxruntime": errors[label]} | build[label] if label in errors else {}
            precision = "fp32" if label == "onnxruntime" else args.precision
            records.append(make_record(name, label, precision, 1, "cpu", latency_ms_p50=float(np.median(v)),
                                       rounds_ms=v, round_latency_ratio_vs={"onnxruntime": ratio}, **extra))
            print(f"{name:20s} {label:28s} {np.median(v):7.2f} ms  x{ratio:.2f} of onnxruntime", flush=True)
    notes = (f"{args.rounds} interleaved rounds in one process, batch 1, greenrt {args.precision} engines, torch "
             f"threads {torch.get_num_threads()}; "
             f"rounds_ms: each round's median of {args.runs} runs; latency_ms_p50: the median of those; "
             "round_latency_ratio_vs: the median of the per-round ratios. onnxruntime: CPUExecutionProvider, default "
             "session options. Random weights (torchvision, seed 0); --opt-level 4 adds Inductor as a candidate for the "
             "whole engine (engine_choice: its timing at build).")
    print("wrote", write_results(args.out, collect_metadata(command_line(), device="cpu", notes=notes), records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
