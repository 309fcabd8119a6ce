"""The ONNX node conformance cases (what `greenrt conformance` runs) as a greenrt-results/1 file: one record per
case with its op, status (passed / failed / skipped) and the reason.

    python3 bench/conformance_results.py --device cuda --out bench/results/conformance_cuda_h100.json

Prints the failed cases and the `N passed, N failed, N skipped` line as `greenrt conformance --show failed` does.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

RUNNER = "greenrt conformance"
NOTES = ("One record per ONNX node test case of the installed onnx (onnx.backend.test.case.node, numpy seed 0), run "
         "through greenrt with the case's own tolerances and an exact dtype match; model is the case name. Skipped: "
         "an element type torch has no dtype for. The cases greenrt is known to fail, with their root causes, are in "
         "src/greenrt/tools/conformance_expected_failures.txt.")


def case_records(cases, device: str) -> list[dict]:
    """Records from case results (objects or dicts with name, op, status, reason)."""
    out = []
    for case in cases:
        c = case if isinstance(case, dict) else vars(case)
        out.append(make_record(c["name"], RUNNER, None, None, device, timed=False, op=c["op"], status=c["status"],
                               reason=c["reason"]))
    return out


def main() -> int:
    from greenrt.tools.conformance import run_all

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("-k", "--select", action="append", help="glob on case name or op (repeatable)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    results = run_all(args.select, device=args.device, progress=sys.stderr.isatty())
    for r in results:
        if r.status == "failed":
            print(f"FAILED   {r.name}: {r.reason}")
    write_results(args.out, collect_metadata(command_line(), device=args.device, notes=NOTES),
                  case_records(results, args.device), one_line_records=True)
    counts = Counter(r.status for r in results)
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
