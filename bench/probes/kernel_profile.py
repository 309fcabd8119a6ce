"""Where a model's GPU time goes: the CUDA kernels of one greenrt fp16 engine call and of one torch eager fp16 call,
side by side (torch.profiler, CUDA graphs off so every kernel is seen), with each engine step's precision.

    python bench/probes/kernel_profile.py vit_b_16:64 bert_base:64 --out kernels.json

Per model and batch: kernels per call, GPU ms per call, the top kernels by time for each runner, and the engine's
steps that stayed fp32 (op types). For finding what to fuse or which tactic is missing, not a speed claim.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from greenrt.tools.results import collect_metadata, command_line, write_results  # noqa: E402


def _kernels(fn, calls: int) -> tuple[list[tuple[str, float, int]], float, float]:
    """(top kernels as (name, ms per call, launches per call), kernels per call, GPU ms per call)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    time_us: dict[str, float] = defaultdict(float)
    count: Counter = Counter()
    for e in prof.events():
        if e.device_type.name == "CUDA":
            time_us[e.name] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
            count[e.name] += 1
    top = sorted(time_us.items(), key=lambda kv: -kv[1])
    rows = [(name[:110], us / calls / 1e3, count[name] / calls) for name, us in top[:15]]
    return rows, sum(count.values()) / calls, sum(time_us.values()) / calls / 1e3


def main() -> int:
    import torch

    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.engine_file import inspect_engine_header
    from greenrt.runtime.session import InferenceSession
    from greenrt.build.inputs import parse_shapes
    from greenrt.tools.bench import _feeds, _to_device, _torch_inputs, batch_shapes

    import bench.suite as suite
    import bench.suite_models as sm

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="NAME:BATCH of bench/suite_models.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--opt-level", type=int, default=0)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            name, batch = spec.split(":")
            batch = int(batch)
            onnx_path = suite.export(name, Path(tmp))
            engine = Path(tmp) / f"{name}.engine"
            shapes = suite.SUITE[name][1]
            header = build_engine(onnx_path, engine, BuildConfig(
                device="cuda", precision="fp16", opt_level=args.opt_level,
                profiles=[suite.profile_for(onnx_path, batch, shapes)]), log=lambda m: None)
            steps = inspect_engine_header(engine)["plan"]["steps"]
            report = header["report"]
            fp32 = Counter(n["op_type"] for n in report["precision"]["kept_or_overridden"] if n["precision"] == "fp32")
            acc = max((v for a in report.get("accuracy_vs_fp32_unoptimized", []) for v in a["max_rel_err"].values()),
                      default=None)
            session = InferenceSession(str(engine), device="cuda", cuda_graphs=False)
            order = [a.name for a in session.get_inputs()]
            feeds = _to_device(_feeds(session, batch_shapes(session.get_inputs(), parse_shapes(shapes), batch),
                                      seed=0, n=1), "cuda")[0]
            engine_rows, engine_n, engine_ms = _kernels(lambda: session.run_device(feeds), args.calls)
            module = getattr(sm, name)().half().cuda().eval()
            tin = _torch_inputs([feeds], order, "fp16")[0]
            with torch.inference_mode():
                eager_rows, eager_n, eager_ms = _kernels(lambda: module(*tin), args.calls)
            for who, runner, (rows, n, ms) in (("engine", "greenrt engine fp16", (engine_rows, engine_n, engine_ms)),
                                               ("eager", "torch eager fp16", (eager_rows, eager_n, eager_ms))):
                results.append({"model": name, "runner": f"{runner} (kernel profile)", "precision": "fp16",
                                "batch": batch, "device": "cuda",
                                "max_rel_err_vs_fp32_unoptimized": acc if who == "engine" else None,
                                "kernels_per_call": n, "gpu_ms_per_call": ms,
                                "top_kernels": [{"name": k, "ms_per_call": t, "launches_per_call": c}
                                                for k, t, c in rows],
                                **({"engine_steps": len(steps), "fp32_steps": dict(fp32)} if who == "engine" else {})})
            print(f"== {name} b{batch}: engine {len(steps)} steps, fp32 steps {dict(fp32)}")
            for rec in results[-2:]:
                print(f"  {rec['runner']}: {rec['kernels_per_call']:.0f} kernels, {rec['gpu_ms_per_call']:.3f} GPU ms")
                for k in rec["top_kernels"]:
                    print(f"    {k['ms_per_call']:8.3f} ms {k['launches_per_call']:5.0f}x  {k['name']}")
            del session, module
            torch.cuda.empty_cache()
    write_results(args.out, collect_metadata(command_line(), device="cuda", notes=(
        "Kernel profile of one call (torch.profiler, CUDA graphs off, mean of --calls calls): where the GPU time "
        "goes, engine vs torch eager fp16 on the same inputs; not a speed claim. The engine's accuracy is its build "
        "check against the unoptimized fp32 graph; eager's was not measured here (null)")), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
