"""The ONNX node conformance suite, generated from the installed onnx package and run through greenrt.

Cases come from ``onnx.backend.test.case.node.collect_testcases()`` with numpy's global seed fixed, so every run
sees the same inputs. Each case is compiled (``plan.compile.compile_model``) and run through the runtime's one
``Runner`` at fp32, and compared with the expected outputs using the case's own rtol/atol (onnx's backend-test
defaults: rtol 1e-3, atol 1e-7) and an exact dtype match. A case is skipped only when it needs an element type
torch cannot hold (``skip_reason``); anything else that does not match is a failure.
"""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from ..errors import GreenrtError
from ..onnx.dtypes import STRING, is_supported_elem_type, numpy_to_torch, torch_to_numpy
from ..onnx.importer import load_model
from ..plan.compile import compile_model
from ..runtime.runner import Runner

SEED = 0
EXPECTED_FAILURES = Path(__file__).with_name("conformance_expected_failures.txt")


@dataclass
class CaseResult:
    name: str
    op: str
    status: str  # "passed" | "failed" | "skipped"
    reason: str = ""


@lru_cache(maxsize=1)
def collect_cases():
    """All node test cases of the installed onnx, generated with numpy's seed fixed to SEED."""
    from onnx.backend.test.case import node

    state = np.random.get_state()
    np.random.seed(SEED)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return tuple(node.collect_testcases(None))
    finally:
        np.random.set_state(state)


@lru_cache(maxsize=1)
def _op_names() -> dict[str, str]:
    return {s.name.lower(): s.name for s in onnx.defs.get_all_schemas_with_history()}


def op_of_case(case) -> str:
    """The ONNX op a case tests: the single node's op, else the op named by the case's longest name prefix."""
    ops = {n.op_type for n in case.model.graph.node}
    if len(ops) == 1:
        return ops.pop()
    tokens = case.name.removeprefix("test_").split("_")
    names = _op_names()
    for k in range(len(tokens), 0, -1):
        key = "".join(tokens[:k]).lower()
        if key in names:
            return names[key]
    return case.model.graph.node[0].op_type if case.model.graph.node else "?"


def _type_name(elem_type: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"elem_type {elem_type}"


def skip_reason(case) -> str:
    """Why a case cannot be run by design (never used to hide a wrong answer); '' if it must run: the case needs an
    element type greenrt has no torch dtype for (4-bit, 2-bit; float8e8m0 on torch < 2.7)."""
    model = case.model
    types = []
    for v in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        types.append(v.type)
    elem_types = set()
    for t in types:
        while True:
            which = t.WhichOneof("value")
            if which == "tensor_type":
                elem_types.add(t.tensor_type.elem_type)
                break
            if which == "sequence_type":
                t = t.sequence_type.elem_type
            elif which == "optional_type":
                t = t.optional_type.elem_type
            else:
                break
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "to" or attr.name == "output_dtype":
                elem_types.add(attr.i)
    bad = sorted(_type_name(t) for t in elem_types if t and t != STRING and not is_supported_elem_type(t))
    if bad:
        return f"element type {', '.join(bad)} has no torch dtype"
    return ""


def _to_numpy_value(value):
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list):
        return [_to_numpy_value(v) for v in value]
    if value is None:
        return None
    return np.asarray(value)


def _to_runtime(value, device):
    if value is None:
        return None
    if isinstance(value, list):
        return [_to_runtime(v, device) for v in value]
    return numpy_to_torch(value, device)


def _from_runtime(value):
    if value is None:
        return None
    if isinstance(value, list):
        return [_from_runtime(v) for v in value]
    if isinstance(value, torch.Tensor):
        return torch_to_numpy(value)
    return np.asarray(value)


def compare(expected, actual, rtol: float, atol: float, where: str = "output") -> str:
    """'' if ``actual`` matches ``expected`` (dtype exact, values within rtol/atol, NaN == NaN), else why not."""
    if expected is None or actual is None:
        return "" if expected is None and actual is None else f"{where}: expected {expected!r}, got {actual!r}"
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected a sequence of {len(expected)}, got {type(actual).__name__}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            problem = compare(e, a, rtol, atol, f"{where}[{i}]")
            if problem:
                return problem
        return ""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if expected.dtype == object or expected.dtype.kind in "US":
        exp = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s), otypes=[object])(expected)
        if actual.shape != expected.shape:
            return f"{where}: shape {actual.shape} != expected {expected.shape}"
        return "" if expected.size == 0 or (exp == actual.astype(object)).all() else f"{where}: strings differ"
    if actual.dtype != expected.dtype:
        return f"{where}: dtype {actual.dtype} != expected {expected.dtype}"
    if actual.shape != expected.shape:
        return f"{where}: shape {actual.shape} != expected {expected.shape}"
    if expected.dtype.kind not in "fc" and expected.dtype.itemsize > 0 and expected.dtype.kind in "biu":
        if not np.array_equal(expected, actual):
            return f"{where}: values differ ({int((expected != actual).sum())} of {expected.size} elements)"
        return ""
    exp64 = expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64)
    act64 = actual.astype(exp64.dtype)
    ok = np.isclose(act64, exp64, rtol=rtol, atol=atol, equal_nan=True)
    if not ok.all():
        err = np.abs(act64 - exp64)[~ok]
        return f"{where}: {int((~ok).sum())} of {expected.size} elements off (max abs err {np.nanmax(err):.3g})"
    return ""


def run_case(case, device: str = "cpu") -> CaseResult:
    op = op_of_case(case)
    reason = skip_reason(case)
    if reason:
        return CaseResult(case.name, op, "skipped", reason)
    try:
        plan, weights = compile_model(load_model(case.model))
        runner = Runner(plan, weights, device, precision="fp32")
        input_names = [i.name for i in case.model.graph.input]
        for i, (inputs, outputs) in enumerate(case.data_sets):
            feeds = {n: _to_runtime(_to_numpy_value(v), device) for n, v in zip(input_names, inputs)}
            got = runner.run(feeds)
            for j, (exp, act) in enumerate(zip(outputs, got)):
                problem = compare(_to_numpy_value(exp), _from_runtime(act), case.rtol, case.atol, f"output {j}")
                if problem:
                    return CaseResult(case.name, op, "failed", f"data set {i}: {problem}")
    except GreenrtError as exc:
        return CaseResult(case.name, op, "failed", str(exc).splitlines()[0][:300])
    except Exception as exc:  # a bug in greenrt: report it as a failure of this case, keep going
        return CaseResult(case.name, op, "failed", f"{type(exc).__name__}: {exc}"[:300])
    return CaseResult(case.name, op, "passed")


def select(cases, patterns: list[str] | None):
    if not patterns:
        return list(cases)
    return [
        c for c in cases if any(fnmatch.fnmatch(c.name, p) or fnmatch.fnmatch(op_of_case(c), p) for p in patterns)
    ]


def run_all(patterns: list[str] | None = None, device: str = "cpu", progress: bool = True) -> list[CaseResult]:
    cases = select(collect_cases(), patterns)
    results = []
    if not progress:
        return [run_case(c, device) for c in cases]
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("conformance", total=len(cases))
        for case in cases:
            results.append(run_case(case, device))
            bar.advance(task)
    return results


RANDOM_OUTCOME = "[random outcome]"


def check_against_expected(results, expected: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(regressions: failing cases not in ``expected`` -> reason, fixed: listed cases that now pass). A listed
    case marked [random outcome] compares random draws and may pass by chance: it never counts as fixed."""
    failed = {r.name: r.reason for r in results if r.status == "failed"}
    ran = {r.name for r in results if r.status != "skipped"}
    regressions = {n: failed[n] for n in sorted(set(failed) - set(expected))}
    fixed = sorted(n for n in set(expected) - set(failed)
                   if n in ran and not expected[n].startswith(RANDOM_OUTCOME))
    return regressions, fixed


def read_expected_failures(path: Path = EXPECTED_FAILURES) -> dict[str, str]:
    """name -> reason, from lines `test_name  # reason`."""
    out = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        out[name.strip()] = reason.strip()
    return out


