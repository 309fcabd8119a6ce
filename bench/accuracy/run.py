"""The accuracy suite (issue 10): per real model, greenrt's fp32, fp16 and INT8 engines (every calibrator, and
--max-accuracy-drop) against the fp32 model, with onnxruntime's own INT8 (quantize_static: QDQ, per-channel, its
MinMax / Entropy / Percentile, its default uint8 activations) on the same data as the outside baseline, in one run.

    python bench/accuracy/run.py --out bench/results/accuracy_cpu.json [--models efficientnet_lite0,minilm,...]

- EfficientNet-Lite0, ImageNet weights: nine real photos (scikit-image and scikit-learn) split by photo into three
  disjoint sets: calibration (astronaut, hubble_deep_field, china), tuning for --max-accuracy-drop (chelsea,
  retina, flower), evaluation (coffee, immunohistochemistry, rocket); random crops of each (30-100% of the shorter
  side, flips): 32 per calibration/tuning photo, 64 per evaluation photo. No labels: top-1 agreement with fp32 (and
  on the confident crops, fp32 softmax > 0.5), top-5 overlap, mean KL of the softmax from fp32's, each with a
  bootstrap 95% interval.
- all-MiniLM-L6-v2: sentences of Python's standard-library docstrings (calibration: json, pathlib, argparse,
  collections; tuning: typing, enum, dataclasses; evaluation: os, subprocess, functools, itertools, datetime, re);
  mean and least cosine similarity of the mean-pooled embeddings to fp32's, and nearest-neighbour retrieval
  agreement (each sentence's nearest other sentence the same as with fp32's embeddings).
- Fashion-MNIST (bench/accuracy/fashion_mnist.py): a ResNet-style and a depthwise MobileNet-style CNN trained here
  (seeded); top-1 accuracy on the 10,000 test images against the labels.

Engines run on the CPU: greenrt's INT8 engine is its exact INT8 reference execution (accuracy here; speed is the
Hopper issue's kernels). Engine file sizes and activation memory are in each record.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from greenrt.build.calibration.histogram import DEFAULT_METHOD  # noqa: E402
from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

METHODS = ("entropy", "percentile", "minmax", "mse")
ORT_METHODS = ("MinMax", "Entropy", "Percentile")
BATCH = 32
RNG_SEED = 0


@dataclass
class Suite:
    path: Path
    calibration: dict  # input name -> array (samples first)
    tuning: dict
    evaluation: dict
    labels: np.ndarray | None
    profile: str
    metrics: Callable[[np.ndarray, np.ndarray], dict]  # (ours, fp32 reference) over the whole evaluation set
    search_metric: str
    budget: float
    data: dict


# -- metrics ---------------------------------------------------------------------------------------------------
def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _bootstrap(values: np.ndarray, n: int = 1000) -> list[float]:
    rng = np.random.default_rng(RNG_SEED)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def classifier_metrics(labels: np.ndarray | None):
    def metrics(ours: np.ndarray, ref: np.ndarray) -> dict:
        p, q = _softmax(ref.astype(np.float64)), _softmax(ours.astype(np.float64))
        agree = (ours.argmax(1) == ref.argmax(1)).astype(np.float64)
        kl = np.sum(p * (np.log(p + 1e-30) - np.log(q + 1e-30)), axis=1)
        top5 = np.array([len(set(a) & set(b)) / 5 for a, b in zip(np.argsort(-ours, 1)[:, :5],
                                                                  np.argsort(-ref, 1)[:, :5])])
        confident = p.max(1) > 0.5
        out = {"top1_agreement_vs_fp32": float(agree.mean()), "ci95_top1_agreement_vs_fp32": _bootstrap(agree),
               "top1_agreement_vs_fp32_confident": float(agree[confident].mean()) if confident.any() else None,
               "confident_samples": int(confident.sum()), "top5_overlap_vs_fp32": float(top5.mean()),
               "kl_divergence_vs_fp32": float(kl.mean()), "ci95_kl_divergence_vs_fp32": _bootstrap(kl),
               "mean_rel_err_vs_fp32": float(np.abs(ours - ref).mean() / np.abs(ref).mean())}
        if labels is not None:
            out["top1_accuracy"] = float((ours.argmax(1) == labels).mean())
            out["top1_accuracy_fp32"] = float((ref.argmax(1) == labels).mean())
        return out
    return metrics


def embedding_metrics(mask: np.ndarray):
    def pooled(out):
        m = mask[..., None].astype(np.float64)
        e = (out.astype(np.float64) * m).sum(1) / m.sum(1)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def metrics(ours: np.ndarray, ref: np.ndarray) -> dict:
        a, b = pooled(ours), pooled(ref)
        cos = np.sum(a * b, 1)
        sa, sb = a @ a.T, b @ b.T
        np.fill_diagonal(sa, -2)
        np.fill_diagonal(sb, -2)
        nn = (sa.argmax(1) == sb.argmax(1)).astype(np.float64)
        return {"cosine_mean_vs_fp32": float(cos.mean()), "cosine_min_vs_fp32": float(cos.min()),
                "ci95_cosine_mean_vs_fp32": _bootstrap(cos), "nn_retrieval_agreement_vs_fp32": float(nn.mean()),
                "mean_rel_err_vs_fp32": float(np.abs(ours - ref).mean() / np.abs(ref).mean())}
    return metrics


# -- models ----------------------------------------------------------------------------------------------------
LITE0_SPLIT = {"calibration": ("astronaut", "hubble_deep_field", "china"),
               "tuning": ("chelsea", "retina", "flower"),
               "evaluation": ("coffee", "immunohistochemistry", "rocket")}


def _photos() -> dict[str, np.ndarray]:
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    out = {name: getattr(sk, name)()[..., :3] for name in ("astronaut", "hubble_deep_field", "chelsea", "retina",
                                                            "coffee", "immunohistochemistry", "rocket")}
    sample = load_sample_images()
    for fname, image in zip(sample.filenames, sample.images):
        out[Path(fname).stem] = image
    return out


def _crops(images: list[np.ndarray], per_photo: int, seed: int) -> np.ndarray:
    from greenrt.zoo.efficientnet_lite import photo_crops

    return photo_crops(per_photo, seed, images=[np.ascontiguousarray(im[..., :3]) for im in images])


def _input_name(path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    return next(v.name for v in graph.input if v.name not in inits)


def lite0(cache: Path) -> Suite:
    from greenrt.zoo import efficientnet_lite as lite

    path = lite.export()
    name = _input_name(path)
    photos = _photos()
    sets = {k: _crops([photos[p] for p in v], 64 if k == "evaluation" else 32, seed)
            for seed, (k, v) in enumerate(LITE0_SPLIT.items())}
    return Suite(path, {name: sets["calibration"]}, {name: sets["tuning"]}, {name: sets["evaluation"]}, None,
                 f"{name}:1x3x224x224/{BATCH}x3x224x224/{BATCH}x3x224x224", classifier_metrics(None),
                 "top1-agreement", 0.03, {k: f"{len(sets[k])} crops of {', '.join(v)}" for k, v in LITE0_SPLIT.items()})


def _sentences(modules: list[str], n: int) -> list[str]:
    out = []
    for module in modules:
        mod = importlib.import_module(module)
        for _, obj in inspect.getmembers(mod):
            doc = inspect.getdoc(obj) or ""
            for s in re.split(r"(?<=[.!?])\s+", doc.replace("\n", " ")):
                if 30 <= len(s) <= 160 and s not in out:
                    out.append(s)
    if len(out) < n:
        raise SystemExit(f"only {len(out)} sentences in {modules}")
    return out[:n]


MINILM_TEXT = {"calibration": (["json", "pathlib", "argparse", "collections"], 64),
               "tuning": (["typing", "enum", "dataclasses"], 64),
               "evaluation": (["os", "subprocess", "functools", "itertools", "datetime", "re"], 256)}


def minilm(cache: Path) -> Suite:
    from greenrt.zoo import text

    path = text.export_minilm()
    sets = {k: text.tokenize(_sentences(mods, n)) for k, (mods, n) in MINILM_TEXT.items()}
    seq = max(s["input_ids"].shape[1] for s in sets.values())
    sets = {k: {n: np.pad(a, ((0, 0), (0, seq - a.shape[1]))) for n, a in s.items()} for k, s in sets.items()}
    profile = ",".join(f"{n}:1x1/{BATCH}x{seq}/{BATCH}x{seq}" for n in ("input_ids", "attention_mask",
                                                                          "token_type_ids"))
    return Suite(path, sets["calibration"], sets["tuning"], sets["evaluation"], None, profile,
                 embedding_metrics(sets["evaluation"]["attention_mask"]), "cosine", 0.01,
                 {k: f"{n} sentences of the docstrings of {', '.join(mods)}" for k, (mods, n) in MINILM_TEXT.items()})


def fmnist(name: str):
    def suite(cache: Path) -> Suite:
        from bench.accuracy import fashion_mnist as fm

        path = fm.models(cache, names=(name,))[name]
        sets = fm.splits()
        cal, tun, (ev, labels) = sets["calibration"][0], sets["tuning"][0], sets["evaluation"]
        return Suite(path, cal, tun, ev, labels, f"image:1x1x28x28/{BATCH}x1x28x28/{BATCH}x1x28x28",
                     classifier_metrics(labels), "top1-agreement", 0.003,
                     {"calibration": "1,000 training images", "tuning": "1,000 other training images",
                      "evaluation": "the 10,000 test images"})
    return suite


MODELS = {"fmnist_resnet": fmnist("fmnist_resnet"), "fmnist_mobilenet": fmnist("fmnist_mobilenet"),
          "efficientnet_lite0": lite0, "minilm": minilm}


# -- runs ------------------------------------------------------------------------------------------------------
def _batches(feeds: dict) -> list[dict]:
    n = len(next(iter(feeds.values())))
    return [{k: v[i:i + BATCH] for k, v in feeds.items()} for i in range(0, n, BATCH)]


def _run_all(run: Callable[[dict], np.ndarray], feeds: dict) -> np.ndarray:
    return np.concatenate([run(b) for b in _batches(feeds)])


def onnxruntime_int8(s: Suite, method: str, folder: Path) -> tuple[np.ndarray, float]:
    folder = folder.resolve()
    s = replace(s, path=s.path.resolve())  # the paths stay right inside the temporary folder
    pre, out = folder / f"{s.path.stem}_pre.onnx", folder / f"{s.path.stem}_ort_{method}.onnx"
    with contextlib.chdir(folder):  # onnxruntime's quantization tools leave temporary files in the working folder
        return _onnxruntime_int8(s, method, pre, out)


def _onnxruntime_int8(s: Suite, method: str, pre: Path, out: Path) -> tuple[np.ndarray, float]:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # equal batches: its entropy calibrator stacks them
        def __init__(self):
            n = len(next(iter(s.calibration.values())))
            self.batches = iter([{k: v[i:i + 8] for k, v in s.calibration.items()} for i in range(0, n - n % 8, 8)])

        def get_next(self):
            return next(self.batches, None)

    if not pre.exists():
        try:
            quant_pre_process(str(s.path), str(pre))
        except Exception:  # noqa: BLE001  (its symbolic shape inference fails on MiniLM's export: skip that step)
            quant_pre_process(str(s.path), str(pre), skip_symbolic_shape=True)
    t0 = time.perf_counter()
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, calibrate_method=getattr(CalibrationMethod, method))
    seconds = time.perf_counter() - t0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return _run_all(lambda f: sess.run(None, f)[0], s.evaluation), seconds


def run_model(name: str, folder: Path, cache: Path, log, only_runs: str | None = None) -> list[dict]:
    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from greenrt.tools.compare import run_onnxruntime

    s = MODELS[name](cache)
    np.savez(folder / f"{name}_calib.npz", **s.calibration)
    np.savez(folder / f"{name}_tune.npz", **s.tuning)
    ref = _run_all(lambda f: run_onnxruntime(str(s.path), f)[0], s.evaluation)
    records = []
    runs = [("fp32", {}), ("fp16", {"precision": "fp16"})]
    runs += [(f"int8 {m}", {"int8": True, "calib_method": m}) for m in METHODS]
    runs.append(("int8 percentile without bias correction", {"int8": True, "calib_method": "percentile",
                                                              "bias_correction": False}))
    runs.append(("int8 percentile smooth auto", {"int8": True, "calib_method": "percentile", "smooth": "auto",
                                                 "accuracy_data": str(folder / f"{name}_tune.npz")}))
    # float8 e4m3 (--fp8): the same pipeline; its dynamic range needs less clipping than INT8's 127 even steps
    runs += [(f"fp8 {m}", {"fp8": True, "calib_method": m}) for m in ("minmax", "percentile")]
    only = re.compile(only_runs) if only_runs else None
    runs = [(label, kw) for label, kw in runs if only is None or only.search(label)]

    def build_and_run(label: str, kw: dict) -> dict:
        engine = folder / f"{name}_{label.replace(' ', '_')}.engine"
        int8 = kw.get("int8", False) or kw.get("fp8", False)
        config = BuildConfig(device="cpu", profiles=[parse_profile(s.profile)], opt_level=0,
                             calib=str(folder / f"{name}_calib.npz") if int8 else None, **kw)
        t0 = time.perf_counter()
        header = build_engine(s.path, engine, config, log=lambda m: None)
        build_s = time.perf_counter() - t0
        sess = greenrt.InferenceSession(engine)
        ours = _run_all(lambda f: sess.run(None, f)[0], s.evaluation)
        precision = ("fp8" if kw.get("fp8") else "int8") if int8 else kw.get("precision", "fp32")
        memory = header["report"].get("memory") or [{}]
        rec = make_record(name, f"greenrt engine {label}", precision, BATCH, "cpu", timed=False,
                          **s.metrics(ours, ref), engine_mib=round(engine.stat().st_size / 2**20, 3),
                          activation_peak_mib=round((memory[-1].get("peak_bytes") or 0) / 2**20, 2),
                          build_s=round(build_s, 1), data=s.data)
        if int8:
            q = header["report"]["int8"]
            rec |= {"calibrator": kw["calib_method"], "int8_layers": q["int8_layers"],
                    "float_layers": q["float_layers"], "calibration_s": q["calibration"]["seconds"],
                    "bias_corrected": q["bias_corrected"], "smoothed": q["smoothed"]}
            if "smooth" in q:
                rec["smooth_alpha"] = q["smooth"]["chosen"]
            if "accuracy_search" in q:
                a = q["accuracy_search"]
                rec |= {"search_metric": a["metric"], "search_budget": a["budget"], "search_met": a["met"],
                        "search_tuning_drop": a["final_drop"], "kept_float": a["kept_float"],
                        "search_trials": a["trials"]}
        return rec

    for label, kw in runs:
        rec = build_and_run(label, kw)
        log(_line(rec))
        records.append(rec)
    if only is not None:  # a rerun of some rows: merged into the full results with --merge
        return records
    # the budget build with the default calibrator (choosing the best one here would choose on the evaluation set)
    rec = build_and_run(f"int8 {DEFAULT_METHOD} max-accuracy-drop {s.budget:g}", {
        "int8": True, "calib_method": DEFAULT_METHOD, "max_accuracy_drop": s.budget, "metric": s.search_metric,
        "accuracy_data": str(folder / f"{name}_tune.npz")})
    log(_line(rec))
    records.append(rec)
    for method in ORT_METHODS:
        try:
            ours, seconds = onnxruntime_int8(s, method, folder)
        except Exception as exc:  # noqa: BLE001  (onnxruntime's failure is a record, the suite goes on)
            records.append(make_record(name, f"onnxruntime int8 quantize_static QDQ {method.lower()}", "int8",
                                       BATCH, "cpu", timed=False, status="skipped", top1_agreement_vs_fp32=None,
                                       reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
            log(f"{name} onnxruntime {method}: failed: {exc}")
            continue
        rec = make_record(name, f"onnxruntime int8 quantize_static QDQ {method.lower()}", "int8", BATCH, "cpu",
                          timed=False, **s.metrics(ours, ref), calibrator=method.lower(),
                          calibration_s=round(seconds, 1), data=s.data)
        log(_line(rec))
        records.append(rec)
    return records


def _line(rec: dict) -> str:
    keys = ("top1_accuracy", "top1_agreement_vs_fp32", "top1_agreement_vs_fp32_confident", "kl_divergence_vs_fp32",
            "cosine_mean_vs_fp32", "nn_retrieval_agreement_vs_fp32", "engine_mib")
    return f"{rec['model']} {rec['runner']}: " + ", ".join(f"{k} {rec[k]:.4g}" for k in keys
                                                          if isinstance(rec.get(k), float))


def merge(parts: list[str], out: str) -> int:
    """Join runs of some models or rows each (run side by side on two cores, a model rerun after a fix, new rows run
    with --only) into one file: the first part's metadata, every part's command; a (model, runner) record in a later
    part replaces the earlier part's, new ones join their model's records."""
    from greenrt.tools.results import load_results

    loaded = [load_results(p) for p in parts]
    metadata = dict(loaded[0]["metadata"])
    metadata["command"] = " ; ".join(d["metadata"]["command"] for d in loaded)
    by_model: dict[str, dict[str, dict]] = {}
    for data in loaded:
        for r in data["records"]:
            by_model.setdefault(r["model"], {})[r["runner"]] = r
    write_results(out, metadata, [r for recs in by_model.values() for r in recs.values()])
    print(f"wrote {out}: {sum(map(len, by_model.values()))} records of {', '.join(by_model)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--merge", nargs="+", metavar="PART", help="join these results files into --out and stop")
    ap.add_argument("--only", metavar="REGEX", help="run only the greenrt rows whose label matches (e.g. '^fp8'), "
                                                    "no onnxruntime or budget rows; --merge them into the full file")
    ap.add_argument("--cache", default=str(ROOT / ".accuracy_cache"), help="trained Fashion-MNIST models")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    metadata = collect_metadata(command_line(), device="cpu", notes=(
        "Accuracy suite: greenrt engines (fp32, fp16, INT8 per calibrator and with --max-accuracy-drop on the tuning "
        "set) and onnxruntime's quantize_static INT8 against the fp32 model on held-out data, one process. greenrt's "
        "INT8 engine runs its exact INT8 reference execution on the CPU. No timing."))
    records = []
    with tempfile.TemporaryDirectory(prefix="greenrt-accuracy-") as tmp:
        for name in args.models.split(","):
            try:
                records += run_model(name, Path(tmp), Path(args.cache), log=lambda m: print(m, flush=True),
                                     only_runs=args.only)
            except SystemExit as exc:  # a data set not installed here: a record saying so, the suite goes on
                records.append(make_record(name, "greenrt engine", "fp32", BATCH, "cpu", timed=False,
                                           status="skipped", reason=str(exc)))
            write_results(args.out, metadata, records)
    print(f"wrote {args.out}: {len(records)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
