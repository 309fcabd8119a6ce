"""The ONNX node conformance suite, generated from the installed onnx package and run through greenrt.

Cases come from ``onnx.backend.test.case.node.collect_testcases()`` with numpy's global seed fixed, so every run
sees the same inputs. Each case is compiled (``plan.compile.compile_model``) and run through the runtime's one
``Runner`` at fp32, with torch's generator seeded, and compared with the expected outputs using the case's own
rtol/atol (onnx's backend-test defaults: rtol 1e-3, atol 1e-7) and an exact dtype match. A case is skipped only
when it needs an element type torch cannot hold (``skip_reason``); anything else that does not match is a failure.

Cases of random ops (``ops.facts.RANDOM_OPS``, and Dropout in training mode) compare random draws that torch cannot
reproduce, so they are checked for what is deterministic: output dtype, shape and value domain (Bernoulli gives
only 0 and 1, RandomUniform stays in [low, high), a Dropout output is 0 or x / (1 - ratio) as its mask says, ...).
If those hold and only the draws differ, the case fails as ``random outcome``.

Every failure has a category (``CATEGORIES``). The committed expected-failures list records, per case, the category,
an error bound for mismatches and the human reason; the gate (``check_against_expected``) fails when a case fails
differently from its entry: another category, an error above the bound, or it passes now.
"""

from __future__ import annotations

import fnmatch
import math
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from ..errors import UnsupportedModelError
from ..onnx.dtypes import STRING, is_supported_elem_type, numpy_to_torch, torch_to_numpy
from ..onnx.importer import load_model
from ..ops.facts import RANDOM_OPS
from ..plan.compile import compile_model
from ..runtime.runner import Runner

SEED = 0
EXPECTED_FAILURES = Path(__file__).with_name("conformance_expected_failures.txt")

# How a case fails. The first four come from comparing outputs, the next two from greenrt raising.
MISMATCH = "mismatch"          # values off beyond the case's rtol/atol (numbers, bools or strings)
DTYPE = "dtype"                # an output has another element type
SHAPE = "shape"                # an output has another shape, or another number of outputs / sequence length
DOMAIN = "domain"              # a random op's output outside its value domain (a real bug, not a draw)
CRASH = "crash"                # greenrt raised: a GreenrtError (other than unsupported) or any other exception
UNSUPPORTED = "unsupported"    # greenrt raised UnsupportedModelError: an op, opset or dtype it lacks
RANDOM_OUTCOME = "random outcome"  # a random op's draws differ from onnx's; dtype, shape and domain are right
CATEGORIES = (MISMATCH, DTYPE, SHAPE, DOMAIN, CRASH, UNSUPPORTED, RANDOM_OUTCOME)


@dataclass
class CaseResult:
    name: str
    op: str
    status: str  # "passed" | "failed" | "skipped"
    reason: str = ""
    category: str = ""  # for failed cases, one of CATEGORIES
    max_abs: float | None = None  # mismatches: the largest error among the elements off, over all outputs
    max_rel: float | None = None  # ... and the largest |actual - expected| / |expected| among them (expected != 0)


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


# --- comparing outputs --------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """Why one output (or a case) does not match: a category, a message and, for mismatches, the error sizes."""
    category: str
    message: str
    max_abs: float | None = None
    max_rel: float | None = None


def _errors(expected: np.ndarray, actual: np.ndarray, off: np.ndarray) -> tuple[float | None, float | None]:
    """(max abs error, max rel error) over the elements ``off``; NaN against a number counts as inf; the relative
    error is taken where expected is a nonzero finite number (None if there is none)."""
    kind = np.complex128 if expected.dtype.kind == "c" else np.float64
    exp = expected.astype(kind)[off]
    act = actual.astype(kind)[off]
    with np.errstate(all="ignore"):
        diff = np.abs(act - exp)
        diff = np.where(np.isnan(diff), np.inf, diff)
        if diff.size == 0:
            return None, None
        scale = np.abs(exp)
        usable = np.isfinite(scale) & (scale > 0)
        rel = float(np.max(diff[usable] / scale[usable])) if usable.any() else None
    return float(np.max(diff)), rel


def compare_outputs(expected, actual, rtol: float, atol: float, where: str = "output") -> Problem | None:
    """None if ``actual`` matches ``expected`` (dtype exact, values within rtol/atol, NaN == NaN), else the problem."""
    if expected is None or actual is None:
        if expected is None and actual is None:
            return None
        return Problem(SHAPE, f"{where}: expected {expected!r}, got {actual!r}")
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return Problem(SHAPE, f"{where}: expected a sequence of {len(expected)}, got {type(actual).__name__}"
                                  + (f" of {len(actual)}" if isinstance(actual, list) else ""))
        pairs = enumerate(zip(expected, actual))
        problems = [compare_outputs(e, a, rtol, atol, f"{where}[{i}]") for i, (e, a) in pairs]
        return merge_problems([p for p in problems if p])
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    if expected.dtype == object or expected.dtype.kind in "US":
        exp = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s), otypes=[object])(expected)
        if actual.shape != expected.shape:
            return Problem(SHAPE, f"{where}: shape {actual.shape} != expected {expected.shape}")
        if expected.size == 0 or (exp == actual.astype(object)).all():
            return None
        return Problem(MISMATCH, f"{where}: strings differ")
    if actual.dtype != expected.dtype:
        return Problem(DTYPE, f"{where}: dtype {actual.dtype} != expected {expected.dtype}")
    if actual.shape != expected.shape:
        return Problem(SHAPE, f"{where}: shape {actual.shape} != expected {expected.shape}")
    if expected.dtype.kind in "biu":
        off = expected != actual
        if not off.any():
            return None
        max_abs, max_rel = _errors(expected, actual, off)
        return Problem(MISMATCH, f"{where}: values differ ({int(off.sum())} of {expected.size} elements)",
                       max_abs, max_rel)
    kind = np.complex128 if expected.dtype.kind == "c" else np.float64
    with np.errstate(all="ignore"):
        exp64 = expected.astype(kind)
        act64 = actual.astype(kind)
        ok = np.isclose(act64, exp64, rtol=rtol, atol=atol, equal_nan=True)
    if ok.all():
        return None
    max_abs, max_rel = _errors(expected, actual, ~ok)
    rel = "" if max_rel is None else f", max rel err {max_rel:.3g}"
    return Problem(MISMATCH, f"{where}: {int((~ok).sum())} of {expected.size} elements off "
                             f"(max abs err {max_abs:.3g}{rel})", max_abs, max_rel)


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def merge_problems(problems: list[Problem]) -> Problem | None:
    """One problem for several outputs: the first dtype/shape problem if any (it hides the values), else a mismatch
    with the first message and the largest errors of all."""
    if not problems:
        return None
    for p in problems:
        if p.category != MISMATCH:
            return p
    first = problems[0]
    more = f" (and {len(problems) - 1} more outputs off)" if len(problems) > 1 else ""
    max_abs = max_rel = None
    for p in problems:
        max_abs, max_rel = _max(max_abs, p.max_abs), _max(max_rel, p.max_rel)
    return Problem(MISMATCH, first.message + more, max_abs, max_rel)


def compare(expected, actual, rtol: float, atol: float, where: str = "output") -> str:
    """'' if ``actual`` matches ``expected``, else why not (``compare_outputs``'s message)."""
    problem = compare_outputs(expected, actual, rtol, atol, where)
    return problem.message if problem else ""


# --- random ops: what is deterministic about them -------------------------------------------------------------------


def _nodes(graph) -> Iterable:
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from _nodes(g)


def _all_nodes(model) -> list:
    nodes = list(_nodes(model.graph))
    for f in model.functions:
        nodes.extend(f.node)
    return nodes


def random_ops(case) -> set[str]:
    """The random ops a case runs: ops of RANDOM_OPS, and Dropout when it is given a training_mode input (with
    training on and ratio > 0 it draws a mask; otherwise it is the identity and compares exactly)."""
    found = set()
    for n in _all_nodes(case.model):
        if n.op_type in RANDOM_OPS or (n.op_type == "Dropout" and len(n.input) > 2 and n.input[2]):
            found.add(n.op_type)
    return found


def _attrs(case, op_type: str) -> dict:
    """The attributes of the case's first ``op_type`` node (an expanded case may have none: {})."""
    for n in _all_nodes(case.model):
        if n.op_type == op_type:
            return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    return {}


def _bernoulli_domain(attrs, inputs, actual) -> str:
    y = np.asarray(actual[0]).astype(np.float64)
    if not np.isin(y, (0.0, 1.0)).all():
        return f"Bernoulli output has values other than 0 and 1: {np.unique(y)[:8].tolist()}"
    p = np.asarray(inputs[0]).astype(np.float64)
    if p.shape == y.shape and ((y[p == 0] != 0).any() or (y[p == 1] != 1).any()):
        return "Bernoulli gave 1 where p = 0 or 0 where p = 1"
    return ""


def _uniform_domain(attrs, inputs, actual) -> str:
    low, high = float(attrs.get("low", 0.0)), float(attrs.get("high", 1.0))
    y = np.asarray(actual[0]).astype(np.float64)
    if y.size and not ((y >= low) & (y < high)).all():
        return f"RandomUniform output outside [{low:g}, {high:g}): min {y.min():g}, max {y.max():g}"
    return ""


def _normal_domain(attrs, inputs, actual) -> str:
    y = np.asarray(actual[0]).astype(np.float64)
    if not np.isfinite(y).all():
        return "RandomNormal output has inf or NaN"
    return ""


def _multinomial_domain(attrs, inputs, actual) -> str:
    logits = np.asarray(inputs[0]).astype(np.float64)
    y = np.asarray(actual[0])
    classes = logits.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= classes):
        return f"Multinomial drew classes outside [0, {classes})"
    if logits.ndim == 2 and y.ndim == 2 and np.isneginf(np.take_along_axis(logits, y.astype(np.int64), 1)).any():
        return "Multinomial drew a class of probability 0"
    return ""


def _dropout_domain(attrs, inputs, actual, rtol: float = 1e-5, atol: float = 1e-6) -> str:
    x = np.asarray(inputs[0]).astype(np.float64)
    ratio = float(np.asarray(inputs[1])) if len(inputs) > 1 and inputs[1] is not None else 0.5
    training = len(inputs) > 2 and inputs[2] is not None and bool(np.asarray(inputs[2]))
    y = np.asarray(actual[0]).astype(np.float64)
    if not training or ratio == 0.0:
        kept, scaled = np.ones(x.shape, bool), x
    else:
        scaled = x / (1.0 - ratio) if ratio < 1.0 else np.zeros_like(x)
        kept = ~np.isclose(y, 0.0, rtol=0, atol=atol) | np.isclose(scaled, 0.0, rtol=0, atol=atol)
    if not np.isclose(np.where(kept, y, scaled), scaled, rtol=rtol, atol=atol).all():
        return f"Dropout output has elements that are neither 0 nor x / (1 - {ratio:g})"
    if len(actual) > 1 and actual[1] is not None:
        mask = np.asarray(actual[1])
        if mask.dtype != np.bool_:
            return f"Dropout mask is {mask.dtype}, not bool"
        if not np.isclose(y, np.where(mask, scaled, 0.0), rtol=rtol, atol=atol).all():
            return "Dropout output does not follow its mask: y != where(mask, x / (1 - ratio), 0)"
    return ""


# op under test -> check(attributes, inputs (graph input order), actual outputs) -> '' or what is wrong
DOMAIN_CHECKS = {
    "Bernoulli": _bernoulli_domain,
    "RandomUniform": _uniform_domain,
    "RandomUniformLike": _uniform_domain,
    "RandomNormal": _normal_domain,
    "RandomNormalLike": _normal_domain,
    "Multinomial": _multinomial_domain,
    "Dropout": _dropout_domain,
}


def domain_problem(case, op: str, inputs: list, actual: list) -> str:
    """'' if the outputs of a random case lie in the value domain of the op under test (no rule: '')."""
    check = DOMAIN_CHECKS.get(op)
    return check(_attrs(case, op), inputs, actual) if check else ""


# --- running a case -------------------------------------------------------------------------------------------------


def _rng_devices(device: str) -> list[int]:
    d = torch.device(device)
    if d.type != "cuda":
        return []
    return [d.index if d.index is not None else torch.cuda.current_device()]


def _check_outputs(case, op: str, randomness: set[str], inputs, outputs, got, data_set: int) -> Problem | None:
    where = f"data set {data_set}"
    if len(got) != len(outputs):
        return Problem(SHAPE, f"{where}: {len(got)} outputs, expected {len(outputs)}")
    problems = []
    for j, (exp, act) in enumerate(zip(outputs, got)):
        problem = compare_outputs(_to_numpy_value(exp), _from_runtime(act), case.rtol, case.atol, f"output {j}")
        if problem:
            problem.message = f"{where}: {problem.message}"
            problems.append(problem)
    problem = merge_problems(problems)
    if problem and problem.category != MISMATCH:
        return problem
    if randomness:
        wrong = domain_problem(case, op, [_to_numpy_value(v) for v in inputs], [_from_runtime(a) for a in got])
        if wrong:
            return Problem(DOMAIN, f"{where}: {wrong}")
        if problem:
            return Problem(RANDOM_OUTCOME, f"{where}: other draws than onnx's ({', '.join(sorted(randomness))}); "
                                           f"dtype, shape and value domain are right")
    return problem


def run_case(case, device: str = "cpu") -> CaseResult:
    op = op_of_case(case)
    reason = skip_reason(case)
    if reason:
        return CaseResult(case.name, op, "skipped", reason)
    randomness = random_ops(case)
    try:
        with torch.random.fork_rng(devices=_rng_devices(device)):
            torch.manual_seed(SEED)
            plan, weights = compile_model(load_model(case.model))
            runner = Runner(plan, weights, device, precision="fp32")
            input_names = [i.name for i in case.model.graph.input]
            problems = []
            for i, (inputs, outputs) in enumerate(case.data_sets):
                feeds = {n: _to_runtime(_to_numpy_value(v), device) for n, v in zip(input_names, inputs)}
                got = runner.run(feeds)
                problem = _check_outputs(case, op, randomness, inputs, outputs, got, i)
                if problem and problem.category not in (MISMATCH, RANDOM_OUTCOME):
                    return CaseResult(case.name, op, "failed", problem.message, problem.category)
                if problem:
                    problems.append(problem)
    except UnsupportedModelError as exc:
        return CaseResult(case.name, op, "failed", str(exc).splitlines()[0][:300], UNSUPPORTED)
    except Exception as exc:  # a GreenrtError, or a bug in greenrt: a failure of this case; keep going
        message = str(exc).splitlines()[0] if str(exc) else ""
        return CaseResult(case.name, op, "failed", f"{type(exc).__name__}: {message}"[:300], CRASH)
    if problems:
        if any(p.category == RANDOM_OUTCOME for p in problems):
            return CaseResult(case.name, op, "failed", problems[0].message, RANDOM_OUTCOME)
        p = merge_problems(problems)
        return CaseResult(case.name, op, "failed", p.message, p.category, p.max_abs, p.max_rel)
    note = f"random op ({', '.join(sorted(randomness))}): values matched exactly" if randomness else ""
    return CaseResult(case.name, op, "passed", note)


def _matches(name: str, op: str | None, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or (op is not None and fnmatch.fnmatch(op, p)) for p in patterns)


def select(cases, patterns: list[str] | None):
    if not patterns:
        return list(cases)
    return [c for c in cases if _matches(c.name, op_of_case(c), patterns)]


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


# --- the expected-failures list -------------------------------------------------------------------------------------


def bound_above(measured: float | None) -> float | None:
    """The error bound recorded for a measured error: the smallest 1, 2 or 5 x 10^k at least twice the measurement
    (2x to 5x headroom, a number one reads at a glance: 0.0078 -> 0.02, 1.9e-7 -> 5e-7). inf stays inf."""
    if measured is None:
        return None
    if not math.isfinite(measured):
        return math.inf
    target = 2.0 * measured
    if target <= 0:
        return 0.0
    exponent = math.floor(math.log10(target))
    for mantissa in (1, 2, 5, 10):
        bound = float(f"{mantissa}e{exponent}")
        if bound >= target:
            return bound
    return float(f"1e{exponent + 2}")  # not reached


@dataclass(frozen=True)
class Expected:
    """One expected failure: how it fails, how far off it may be (mismatches), and why (written by a person)."""
    category: str
    reason: str
    max_abs: float | None = None
    max_rel: float | None = None

    def bound_text(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"abs<={self.max_abs:g}")
        if self.max_rel is not None:
            parts.append(f"rel<={self.max_rel:g}")
        return " ".join(parts) or "-"

    def line(self, name: str) -> str:
        return f"{name}  # {self.category} | {self.bound_text()} | {self.reason}"

    @classmethod
    def from_result(cls, result: CaseResult, reason: str | None = None) -> "Expected":
        """The entry for a failing result: its category, the bound above its errors, ``reason`` or its message."""
        return cls(result.category, reason or result.reason, bound_above(result.max_abs), bound_above(result.max_rel))


HEADER = """\
# ONNX node conformance cases greenrt is known to fail, one a line:
#
#     case  # category | bound | reason
#
# category: how it fails: mismatch (values off beyond the case's rtol/atol), dtype, shape, domain (a random op's
#   output outside its value domain), crash (greenrt raised), unsupported (UnsupportedModelError), or random outcome
#   (a random op whose draws differ from onnx's; its dtype, shape and value domain are still checked).
# bound: for mismatches, abs<=A rel<=R: the largest abs error and |actual - expected| / |expected| allowed among the
#   elements off; written as the smallest 1, 2 or 5 x 10^k at least twice the error measured. '-' for the others.
# reason: the root cause, written by a person; none hides a wrong answer for a real model.
#
# `greenrt conformance --check` (and the test suite) fails when a case fails differently: not listed, another
# category, an error above its bound, or it passes now (a random outcome may pass by chance). `--write-expected`
# rewrites the entries of the cases it ran that changed, keeping the reason of every entry that still fails the
# same way; with -k it touches only the selected cases.
"""

_BOUND = re.compile(r"^(abs|rel)<=(\S+)$")


def parse_expected_line(line: str, where: str = "") -> tuple[str, Expected] | None:
    """(case, entry) from `case  # category | bound | reason`; None for blank and comment lines."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    name, _, rest = line.partition("#")
    fields = [f.strip() for f in rest.split("|", 2)]
    if not name.strip() or len(fields) != 3:
        raise ValueError(f"{where}expected `case  # category | bound | reason`, got {line!r}")
    category, bound, reason = fields
    if category not in CATEGORIES:
        raise ValueError(f"{where}unknown category {category!r} (one of: {', '.join(CATEGORIES)})")
    if not reason:
        raise ValueError(f"{where}{name.strip()} has no reason")
    limits: dict[str, float] = {}
    if bound != "-":
        for token in bound.split():
            m = _BOUND.match(token)
            if not m:
                raise ValueError(f"{where}bad bound {token!r} (abs<=A rel<=R, or -)")
            limits[m.group(1)] = float(m.group(2))
    return name.strip(), Expected(category, reason, limits.get("abs"), limits.get("rel"))


def read_expected_failures(path: Path = EXPECTED_FAILURES) -> dict[str, Expected]:
    """case -> Expected, from the lines of ``path`` (see HEADER)."""
    out: dict[str, Expected] = {}
    if not path.is_file():
        return out
    for number, line in enumerate(path.read_text().splitlines(), 1):
        entry = parse_expected_line(line, f"{path.name}:{number}: ")
        if entry:
            out[entry[0]] = entry[1]
    return out


def format_expected_failures(entries: dict[str, Expected]) -> str:
    return HEADER + "\n" + "".join(entries[name].line(name) + "\n" for name in sorted(entries))


def write_expected_failures(entries: dict[str, Expected], path: Path = EXPECTED_FAILURES) -> None:
    path.write_text(format_expected_failures(entries))


# --- the gate -------------------------------------------------------------------------------------------------------


def difference(result: CaseResult, entry: Expected) -> str:
    """'' if a run case fails the way its entry says (a random outcome may also pass), else how it differs."""
    if result.status == "passed":
        return "" if entry.category == RANDOM_OUTCOME else "passes now"
    if result.category != entry.category:
        return f"fails as {result.category}, listed as {entry.category}: {result.reason}"
    over = []
    for what, measured, bound in (("abs", result.max_abs, entry.max_abs), ("rel", result.max_rel, entry.max_rel)):
        if measured is not None and (bound is None or measured > bound):
            over.append(f"max {what} err {measured:.3g} > bound {'none' if bound is None else f'{bound:g}'}")
    if over:
        return f"{', '.join(over)}: {result.reason}"
    return ""


@dataclass
class GateReport:
    regressions: dict[str, str]  # failing cases that are not listed -> category: reason
    changed: dict[str, str]      # listed cases that fail differently -> how
    fixed: list[str]             # listed cases (not random outcomes) that pass now
    unknown: list[str]           # listed cases that are not in the suite

    @property
    def ok(self) -> bool:
        return not (self.regressions or self.changed or self.fixed or self.unknown)


def check_against_expected(results, expected: dict[str, Expected], suite_names: set[str] | None = None) -> GateReport:
    """Compare run results with the expected failures. Skipped cases are not judged (an environment without a dtype
    skips them); ``suite_names`` (all case names, for a full run) also reports listed names that are no case."""
    regressions, changed, fixed = {}, {}, []
    for r in results:
        if r.status == "skipped":
            continue
        entry = expected.get(r.name)
        if entry is None:
            if r.status == "failed":
                regressions[r.name] = f"{r.category}: {r.reason}"
            continue
        why = difference(r, entry)
        if why == "passes now":
            fixed.append(r.name)
        elif why:
            changed[r.name] = why
    unknown = sorted(set(expected) - suite_names) if suite_names is not None else []
    return GateReport(dict(sorted(regressions.items())), dict(sorted(changed.items())), sorted(fixed), unknown)


def updated_expected(results, expected: dict[str, Expected], suite_names: set[str] | None = None,
                     patterns: list[str] | None = None) -> dict[str, Expected]:
    """The expected failures after a run, for --write-expected. Only the cases in ``results`` change: an entry that
    still fails the same way is kept as it is (reason and bound); one that fails differently gets the measured
    category and bound and the failure message as its reason (to be rewritten by a person); one that passes is
    removed (random outcomes stay). Skipped cases keep their entries. With ``suite_names``, listed names that are no
    case are dropped, only those ``patterns`` select when given."""
    out = dict(expected)
    for r in results:
        if r.status == "skipped":
            continue
        entry = expected.get(r.name)
        if r.status == "passed":
            if entry is not None and entry.category != RANDOM_OUTCOME:
                del out[r.name]
            continue
        if entry is None or difference(r, entry):
            out[r.name] = Expected.from_result(r)
    if suite_names is not None:
        for name in list(out):
            if name not in suite_names and (not patterns or _matches(name, None, patterns)):
                del out[name]
    return out
