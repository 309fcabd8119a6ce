"""A CUDA engine built where there is no GPU, from a timing cache taken on the GPU (build/target.py), in three steps
over two machines:

    # 1. on the GPU machine: take the timing caches (a normal build there, with --timing-cache)
    python bench/gpu_cross_build.py take --out DIR
    # 2. on the development machine (no GPU): build the engine for that GPU from its cache; record the inputs and
    #    onnxruntime's outputs on them to check it against over there
    python bench/gpu_cross_build.py build --cache DIR/resnet50_fp16_b256.timing-cache.json --out .xbuild
    # 3. on the GPU machine (carry .xbuild): load it, check it, time it beside an engine built there from the
    #    same cache
    python bench/gpu_cross_build.py load --dir .xbuild --out DIR      # DIR/cross_build.json

Step 1 also writes the small cache of the test convnet. ``roundtrip`` runs all three on the GPU machine, the build
in a process that sees no GPU (``GREENRT_XB_BATCH`` sets the opt batch, default 256).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

MODEL = "resnet50"
BATCH = int(os.environ.get("GREENRT_XB_BATCH", "256"))
SHAPES = f"image:1x3x224x224/{BATCH}x3x224x224/{BATCH}x3x224x224"
CACHE = f"resnet50_fp16_b{BATCH}.timing-cache.json"
ENGINE = "resnet50_cross.engine"


def _export(folder: Path) -> Path:
    path = folder / f"{MODEL}.onnx"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "suite_models.py"), MODEL, str(path)], check=True)
    return path


def _build(model: Path, engine: Path, cache: Path, device: str = "cuda") -> dict:
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile

    config = BuildConfig(device=device, precision="fp16", profiles=[parse_profile(SHAPES)], timing_cache=str(cache))
    return build_engine(model, engine, config, log=lambda m: print(m[:200], flush=True))


def take(out: Path, with_resnet50: bool) -> None:
    import onnx

    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from tests.build.test_tactics import convnet_model

    out.mkdir(parents=True, exist_ok=True)
    onnx.save(convnet_model(), "/tmp/convnet.onnx")
    convnet_cache = out / "convnet_fp16.timing-cache.json"
    build_engine("/tmp/convnet.onnx", "/tmp/convnet.engine",
                 BuildConfig(device="cuda", precision="fp16", timing_cache=str(convnet_cache),
                             profiles=[parse_profile("x:1x3x12x12/4x3x12x12/8x3x12x12")]), log=print)
    if not with_resnet50:
        return
    header = _build(_export(Path("/tmp")), Path("/tmp/resnet50.engine"), out / CACHE)
    print(f"took {out / CACHE}: {header['report']['tactics']['timed']} layers timed in "
          f"{header['build']['tactic_seconds']:.1f} s")


def build(cache: Path, out: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    import shutil

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache, out / "cache.json")  # for the build on the GPU from the same cache (step 3)
    model = _export(Path("/tmp"))
    t0 = time.perf_counter()
    header = _build(model, out / ENGINE, cache)
    seconds = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.savez(out / "check.npz", image=x, logits_onnxruntime=ref)
    import platform

    from greenrt.host import cpu_name

    (out / "built_here.json").write_text(json.dumps({
        "built_on": cpu_name(), "platform": platform.platform(), "seconds": round(seconds, 1),
        "command": f"python bench/gpu_cross_build.py build --cache {cache} --out {out}",
        "tactics": {k: header["report"]["tactics"][k] for k in ("timed", "cached")}
        | {"missing": len(header["report"]["tactics"].get("missing_from_cache", []))},
        "device": header["device"], "versions": header["versions"]}, indent=1))
    print(f"built {out / ENGINE} for {header['device']['name']} in {seconds:.1f} s")


def load(folder: Path, out: Path, command: str = "python bench/gpu_cross_build.py take (GPU) -> build (development "
         "machine, no GPU) -> load --dir .xbuild (GPU)") -> None:
    import numpy as np
    import torch

    import greenrt
    from greenrt.plan.engine_file import EngineMismatchError, read_engine
    from greenrt.tools.results import collect_metadata, make_record, validate_results

    out.mkdir(parents=True, exist_ok=True)
    here = json.loads((folder / "built_here.json").read_text())
    engine = folder / ENGINE
    check = np.load(folder / "check.npz")
    t0 = time.perf_counter()
    try:
        sess = greenrt.load(engine)  # refused if this GPU or its torch does not match the header
    except EngineMismatchError as exc:
        print(f"refused, as it should be on another GPU: {exc}")
        (out / "cross_build_refused.txt").write_text(str(exc) + "\n")
        return
    load_s = time.perf_counter() - t0
    got = sess.run(None, {"image": check["image"]})[0]
    ref = check["logits_onnxruntime"]
    rel = float(np.abs(got - ref).max() / np.abs(ref).max())
    top1 = float((got.argmax(1) == ref.argmax(1)).mean())

    # the same model built here from the same cache (nothing timed): same tactics, same speed
    model = _export(Path("/tmp"))
    cache = folder / "cache.json"
    native_header = _build(model, Path("/tmp/native.engine"), cache)
    cross_plan = read_engine(engine).plan
    native_plan = read_engine("/tmp/native.engine").plan
    same_tactics = [s.tactic for s in cross_plan.all_steps()] == [s.tactic for s in native_plan.all_steps()]

    def throughput(path) -> float:
        s = greenrt.load(path)
        x = torch.randn(BATCH, 3, 224, 224).numpy()
        for _ in range(3):
            s.run(None, {"image": x})
        torch.cuda.synchronize()
        t = time.perf_counter()
        n = 20
        for _ in range(n):
            s.run(None, {"image": x})
        torch.cuda.synchronize()
        return BATCH * n / (time.perf_counter() - t)

    rates = {"cross_built": throughput(engine), "built_here": throughput("/tmp/native.engine")}
    record = make_record(
        MODEL, "greenrt-engine-built-without-a-gpu", "fp16", 8, "cuda", timed=False,
        max_rel_err_vs_onnxruntime_fp32=rel, top1_agreement_vs_onnxruntime_fp32=top1,
        profile=SHAPES, built_on=here, loaded_on=torch.cuda.get_device_name(), load_seconds=round(load_s, 2),
        same_tactics_as_a_build_on_this_gpu=same_tactics,
        build_on_this_gpu_from_the_cache={k: native_header["report"]["tactics"][k] for k in ("timed", "cached")},
        throughput_img_s_python_loop_at_opt_batch={k: round(v, 1) for k, v in rates.items()})
    result = {"format": "greenrt-results/1", "metadata": collect_metadata(command, "cuda"), "records": [record]}
    validate_results(result)
    (out / "cross_build.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(record, indent=1))


def roundtrip(out: Path) -> None:
    """The three steps on the GPU machine alone: the cache taken there, the engine built in a process that sees no
    GPU (CUDA_VISIBLE_DEVICES=''), then loaded and checked there (where the development machine's build cannot
    reach a GPU of the cache's model within one session)."""
    take(out, with_resnet50=True)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    subprocess.run([sys.executable, __file__, "build", "--cache", str(out / CACHE), "--out", "/tmp/xbuild"], env=env,
                   check=True)
    load(Path("/tmp/xbuild"), out, f"GREENRT_XB_BATCH={BATCH} python bench/gpu_cross_build.py roundtrip --out DIR "
         "(take on the GPU; build in a process with CUDA_VISIBLE_DEVICES=''; load on the GPU)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["take", "build", "load", "roundtrip"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--convnet-only", action="store_true", help="take: the test convnet's cache alone")
    args = ap.parse_args()
    if args.step == "take":
        take(args.out, not args.convnet_only)
    elif args.step == "build":
        build(args.cache, args.out)
    elif args.step == "load":
        load(args.dir, args.out)
    else:
        roundtrip(args.out)


if __name__ == "__main__":
    main()
