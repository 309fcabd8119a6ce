"""The real-model corpus checks (tests/corpus run with -s) as a greenrt-results/1 file.

The corpus tests print one line per model and runner; this reads them from the run's log and writes them with
the machine's metadata. Run it right after the tests, on the same machine (bench/gpu_foundation.sh does):

    python3 -m pytest -s -m gpu tests/corpus 2>&1 | tee corpus.log
    python3 bench/corpus_results.py corpus.log --device cuda --command "python3 -m pytest -s -m gpu tests/corpus" \
        --out bench/results/corpus_h100.json

Lines read (as tests/corpus/test_corpus.py prints them, errors at 3 significant figures):
    bert_base [cuda]: max rel err 7.12e-07                          the ONNX file through InferenceSession
    bert_base engine [cuda fp16]: max rel err 0.0023                a built engine
    yolov8n [cuda]: max rel err 0.000789, tolerance 0.002           a part of an output with its own tolerance
    ppocr_det engine [cuda fp16]: max rel err 0.00489, accuracy search kept 35/155 layers fp32
    efficientnet_lite0_dynamo engine [cuda]: not run (why)          written by hand where a model could not run
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

# the corpus tests' tolerances on max |greenrt - ort| / max |ort| (tests/corpus/test_corpus.py)
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 1e-2}
PRINTED = " Errors at 3 significant figures, as the corpus tests print them."
NOTES = ("max_rel_err_vs_onnxruntime = max |greenrt - onnxruntime| / max |onnxruntime| over every output and input "
         "shape of the model's corpus feeds, onnxruntime fp32 on the CPU as the reference; tolerance_rel is the "
         "test's tolerance. fp16 engines: an output computed by a final Sigmoid/Softmax is checked through the "
         "logits under it (and its probabilities must make the same call at >= 99.5% of positions). Runner "
         "'greenrt onnx' is the ONNX file run by InferenceSession; 'greenrt engine fp32/fp16' a built engine; "
         "search_kept_fp32_layers/search_layers: layers the accuracy search (--max-error) kept fp32.")

_LINE = re.compile(
    r"(?P<model>[A-Za-z0-9_]+)(?P<engine> engine)? \[(?P<device>[a-z]+)(?: (?P<precision>[a-z0-9]+))?\]: "
    r"(?:max rel err (?P<err>[0-9.eE+-]+?)(?:, tolerance (?P<tol>[0-9.eE+-]+?))?(?:, accuracy search kept (?P<kept>\d+)/(?P<layers>\d+) layers fp32)?"
    r"|not run \((?P<reason>.*)\))\s*$")


def parse_line(line: str) -> dict | None:
    """One corpus result line -> a record; None for any other line."""
    m = _LINE.search(line)
    if not m:
        return None
    precision = m["precision"] or (None if m["reason"] is not None else "fp32")
    runner = "greenrt engine" + (f" {m['precision']}" if m["precision"] else "") if m["engine"] else "greenrt onnx"
    if m["reason"] is not None:
        return make_record(m["model"], runner, precision, None, m["device"], timed=False, status="not run",
                           reason=m["reason"])
    kept = {"search_kept_fp32_layers": int(m["kept"]), "search_layers": int(m["layers"])} if m["kept"] else {}
    return make_record(m["model"], runner, precision, None, m["device"], timed=False,
                       max_rel_err_vs_onnxruntime=float(m["err"]),
                       tolerance_rel=float(m["tol"]) if m["tol"] else TOLERANCE.get(precision), **kept)


def parse_log(text: str) -> list[dict]:
    return [rec for rec in map(parse_line, text.splitlines()) if rec is not None]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", help="output of the corpus tests run with -s")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--command", required=True, help="the exact command that ran the tests")
    ap.add_argument("--outcome", default="", help="pytest's last line, e.g. '42 passed'")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    records = parse_log(Path(args.log).read_text())
    if not records:
        print(f"no corpus result lines in {args.log}", file=sys.stderr)
        return 1
    meta = collect_metadata(args.command, device=args.device, notes=NOTES + PRINTED, converted_by=command_line())
    if args.outcome:
        meta["outcome"] = args.outcome
    print("wrote", write_results(args.out, meta, records), f"({len(records)} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
