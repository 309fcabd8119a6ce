"""A/B of the tactic stage on the GPU: the same model built at --opt-level 0 (the ops' heuristics) and 3 (timed
tactics), both run through `greenrt bench`'s measurement at batch 1 and the profile's large batch, in one process.

    python bench/probes/tactics_ab.py mobilenet_v3_large:256 resnet50:256 --out tactics_ab.json --cache cache.json

Writes greenrt-results/1 records (runner: 'greenrt engine fp16 opt0' / 'opt3') with the build's accuracy against the
unoptimized fp32 graph, and the timing cache the opt-3 builds filled (for cross-machine builds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from greenrt.tools.results import collect_metadata, command_line, write_results  # noqa: E402


def main() -> int:
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from greenrt.tools.bench import BenchConfig, run_bench

    import bench.suite_models as sm

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="NAME:BATCH of bench/suite_models.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", required=True, help="timing cache the opt-3 builds write")
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            name, batch = spec.split(":")
            onnx_path = sm.EXPORTS[name](Path(tmp) / f"{name}.onnx")
            profile = parse_profile(f"image:1x3x224x224/{batch}x3x224x224/{batch}x3x224x224")
            for level in (0, 3):
                engine = Path(tmp) / f"{name}_opt{level}.engine"
                header = build_engine(onnx_path, engine, BuildConfig(
                    device=args.device, precision="fp16", profiles=[profile], opt_level=level,
                    timing_cache=args.cache if level else None), log=lambda m: None)
                tactics = header["report"]["tactics"]
                winners = Counter(layer["winner"] for layer in tactics["layers"])
                acc = max(v for a in header["report"]["accuracy_vs_fp32_unoptimized"] for v in a["max_rel_err"].values())
                print(f"{name} opt{level}: build {header['build']['seconds']:.1f} s, tactics {header['build']['tactic_seconds']:.1f} s, "
                      f"winners {dict(winners)}, max rel err vs fp32 {acc:.2e}", flush=True)
                recs, _ = run_bench(BenchConfig(model=str(engine), device=args.device, batches=[1, int(batch)],
                                                duration_s=args.duration, vs=[]))
                for rec in recs:
                    rec["model"], rec["runner"] = name, f"greenrt engine fp16 opt{level}"
                    rec["max_rel_err_vs_fp32_unoptimized"] = acc
                    rec["build_s"] = header["build"]["seconds"]
                    rec["tactic_winners"] = dict(winners)
                    print(f"  batch {rec['batch']}: {rec['items_per_s']:.0f} items/s, p50 {rec['latency_ms_p50']:.3f} ms, "
                          f"{(rec['joules_per_item'] or 0) * 1e3:.1f} mJ", flush=True)
                    records.append(rec)
    write_results(args.out, collect_metadata(command_line(), device=args.device, notes=(
        "Tactic stage A/B: each model built at --opt-level 0 and 3 in one process and run through greenrt bench's "
        "measurement (CUDA events, NVML energy); max_rel_err_vs_fp32_unoptimized is the build's own check.")), records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
