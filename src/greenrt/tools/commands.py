"""Implementations of the CLI subcommands (argument parsing lives in cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from collections import defaultdict

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import GreenrtError
from .exit_codes import EXIT_MISMATCH, EXIT_OK

console = Console()
err_console = Console(stderr=True)


def print_versions() -> int:
    import onnx
    import torch

    import greenrt

    print(f"greenrt {greenrt.__version__}  torch {torch.__version__}  onnx {onnx.__version__}")
    return EXIT_OK


# -- conformance ---------------------------------------------------------------------------------------
def cmd_conformance(args) -> int:
    from .conformance import (EXPECTED_FAILURES, check_against_expected, collect_cases, read_expected_failures,
                              run_all, updated_expected, write_expected_failures)

    expected_path = Path(args.expected_file) if args.expected_file else EXPECTED_FAILURES
    try:  # read first: a malformed list stops before the long run
        expected = read_expected_failures(expected_path)
    except ValueError as exc:
        raise GreenrtError(f"{expected_path}: {exc}") from None
    results = run_all(args.select, device=args.device, progress=sys.stderr.isatty())
    by_op: dict[str, list] = defaultdict(list)
    for r in results:
        by_op[r.op].append(r)

    table = Table(title="ONNX node conformance (greenrt, %s)" % args.device)
    for col in ("op", "passed", "failed", "skipped"):
        table.add_column(col, justify="left" if col == "op" else "right")
    for op_name in sorted(by_op):
        rs = by_op[op_name]
        counts = [sum(r.status == s for r in rs) for s in ("passed", "failed", "skipped")]
        style = "red" if counts[1] else None
        table.add_row(op_name, *map(str, counts), style=style)
    console.print(table)
    if args.show != "none":
        for r in results:
            if args.show == "all" or r.status == "failed":
                label = f"{r.status.upper():8} {r.name}" + (f" [{r.category}]" if r.category else "")
                console.print(f"{label}: {r.reason}", markup=False, highlight=False)

    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in results], f, indent=1)

    suite_names = {c.name for c in collect_cases()}
    if args.write_expected:
        new = updated_expected(results, expected, suite_names, args.select)
        added = sorted(set(new) - set(expected))
        removed = sorted(set(expected) - set(new))
        rewritten = sorted(n for n in set(new) & set(expected) if new[n] != expected[n])
        write_expected_failures(new, expected_path)
        console.print(f"wrote {len(new)} expected failures to {expected_path}: {len(added)} added, "
                      f"{len(rewritten)} rewritten, {len(removed)} removed, "
                      f"{len(new) - len(added) - len(rewritten)} kept as they were", markup=False, highlight=False)
        for name in added + rewritten:
            console.print(f"  write a reason for {name} (now: {new[name].reason})", markup=False, highlight=False)
        expected = new

    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")}
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    categories = defaultdict(int)
    for r in results:
        if r.status == "failed":
            categories[r.category] += 1
    if categories:
        print("failed by category: " + ", ".join(f"{n} {c}" for c, n in sorted(categories.items())))
    if args.check:
        report = check_against_expected(results, expected, None if args.select else suite_names)
        for name, reason in report.regressions.items():
            print(f"REGRESSION {name}: {reason}", file=sys.stderr)
        for name, how in report.changed.items():
            print(f"FAILS DIFFERENTLY {name}: {how}", file=sys.stderr)
        for name in report.fixed:
            print(f"NOW PASSES {name}: remove it from {expected_path.name}", file=sys.stderr)
        for name in report.unknown:
            print(f"NOT IN SUITE {name}: listed in {expected_path.name} but no such case", file=sys.stderr)
        return EXIT_OK if report.ok else EXIT_MISMATCH
    return EXIT_OK


def _names(spec: str) -> list[str]:
    return [n.strip() for n in spec.split(",") if n.strip()]


def cmd_build(args) -> int:
    import torch

    from ..build import BuildConfig, build_engine, parse_size
    from ..plan.profiles import parse_profile

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = BuildConfig(
        device=device,
        precision=args.precision or "fp32",
        layer_precision=args.layer_precision,
        profiles=[parse_profile(s) for s in args.shapes],
        workspace=parse_size(args.workspace) if args.workspace else None,
        channels_last={"auto": None, "on": True, "off": False}[args.channels_last],
        optimize=not args.no_optimize,
        outputs=_names(args.outputs),
        max_error=args.max_error,
        error_outputs=_names(args.error_outputs),
        inputs=list(args.inputs),
    )
    output = args.output or str(Path(args.model).with_suffix(".engine"))
    with console.status("building"):
        build_engine(args.model, output, config, log=lambda msg: console.print(escape(msg), highlight=False))
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(device=args.device, repeats=args.repeats, precision=args.precision)


# -- inspect ---------------------------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    if args.what == "ops":
        return _inspect_ops(args.opset)
    return _inspect_model(args.model)


def _inspect_ops(opset: int | None) -> int:
    from ..ops import REGISTRY, load_all

    load_all()
    by_domain: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for impl in REGISTRY.all():
        if opset is not None and impl.domain == "" and impl.since > opset:
            continue
        by_domain[impl.domain or "ai.onnx"][impl.op_type].append(impl)
    total = 0
    for domain in sorted(by_domain):
        table = Table(title=f"domain {domain}")
        table.add_column("op")
        table.add_column("since-versions implemented")
        table.add_column("family")
        for op_type in sorted(by_domain[domain]):
            impls = sorted(by_domain[domain][op_type], key=lambda i: i.since)
            table.add_row(op_type, ", ".join(str(i.since) for i in impls), impls[0].family)
            total += 1
        console.print(table)
    print(f"{total} ops supported")
    return EXIT_OK


def _inspect_engine(path: str) -> int:
    from collections import Counter

    from ..plan.engine_file import inspect_engine_header
    from ..plan.plan import Plan

    header = inspect_engine_header(path)
    cfg = header.get("config", {})
    console.print(f"[bold]{path}[/bold]: greenrt engine, format {header['format_version']}", highlight=False)
    console.print(f"built with {header['versions']} for {header['device']}", highlight=False)
    console.print(f"config: precision {cfg.get('precision')}, channels_last {cfg.get('channels_last')}, "
                  f"workspace {cfg.get('workspace')}", highlight=False)
    for i, p in enumerate(header.get("profiles", [])):
        console.print(f"profile {i}: {p}", highlight=False)
    report = header.get("report", {})
    if "passes" in report:
        table = Table(title=f"graph passes: {report['nodes']['before']} -> {report['nodes']['after']} nodes")
        for col in ("pass", "rewrites", "rule"):
            table.add_column(col)
        for r in report["passes"]:
            table.add_row(r["name"], str(r["count"]), escape(r["rule"]))
        console.print(table)
    if "precision" in report and isinstance(report["precision"], dict):
        console.print(f"precision: {report['precision'].get('counts', report['precision'])}", highlight=False)
    search = report.get("accuracy_search")
    if search:
        console.print(f"accuracy search: {search['kept_fp32']} of {search['layers']} layers kept fp32 for max error "
                      f"{search['target']:g} on {', '.join(search['outputs'])}: {search['max_rel_err_before']:.3g} "
                      f"-> {search['max_rel_err_after']:.3g} ({len(search['trials'])} trials)", highlight=False)
    for m in report.get("memory", []):
        console.print(f"activation memory (profile {m['profile']}, max shapes): peak {m['peak_bytes'] / 2**20:.1f}"
                      f" MiB with reuse vs {m['naive_bytes'] / 2**20:.1f} MiB naive", highlight=False)
    plan = Plan.from_json(header["plan"])
    counts = Counter((s.domain + "." if s.domain else "") + s.op_type for s in plan.all_steps())
    console.print(_op_count_table(f"plan: {sum(counts.values())} steps", counts))
    return EXIT_OK


def _op_count_table(title: str, counts) -> Table:
    table = Table(title=title)
    table.add_column("op")
    table.add_column("count", justify="right")
    for op_type, n in counts.most_common():
        table.add_row(op_type, str(n))
    return table


def _inspect_model(path: str) -> int:
    from ..runtime.session import is_engine_file

    if is_engine_file(path):
        return _inspect_engine(path)
    return _inspect_onnx(path)


def _inspect_onnx(path: str) -> int:
    from collections import Counter

    from ..onnx.importer import load_model
    from ..plan.compile import value_spec
    from ..runtime.session import node_arg

    model = load_model(path)
    g = model.graph
    console.print(f"[bold]{path}[/bold]  opsets: {dict(model.opset_imports)}  producer: {model.producer_name}")
    for title, values in (("inputs", [v for v in g.inputs if v.name not in g.initializers]), ("outputs", g.outputs)):
        table = Table(title=title)
        for col in ("name", "type", "shape"):
            table.add_column(col)
        for v in values:
            arg = node_arg(value_spec(v))
            table.add_row(arg.name, arg.type, str(arg.shape))
        console.print(table)
    counts = Counter(n.op_type for n in g)
    console.print(_op_count_table(f"{sum(counts.values())} nodes, {len(g.initializers)} initializers", counts))
    return EXIT_OK


# -- run / compare ------------------------------------------------------------------------------------------
class InputFeeds(dict):
    """Feeds by input name, and which shapes were made up (dynamic dims nobody gave a size): '' if none."""

    made_up = ""


def _session_and_inputs(args):
    from ..build.inputs import index_bounds, load_inputs, parse_shapes, random_feeds
    from ..runtime.session import InferenceSession

    session = InferenceSession(args.model, device=args.device, allow_mismatch=args.allow_mismatch)
    if args.inputs:
        return session, InputFeeds(load_inputs(args.inputs))
    bounds = index_bounds(session.plan, session.executor.constants)
    drawn = random_feeds(session.get_inputs(), parse_shapes(args.shapes), seed=args.seed, int_bounds=bounds)
    feeds = InputFeeds(drawn.arrays)
    if drawn.made_up:
        feeds.made_up = drawn.describe_made_up()
        err_console.print(f"random inputs with made-up shapes (dynamic dims set to 1): {feeds.made_up}",
                          highlight=False, markup=False)
    return session, feeds


def _run_session(session, feeds: InputFeeds) -> list:
    """session.run; when the model rejects made-up shapes, ask for real inputs rather than show a node failure."""
    from ..errors import ExecutionError

    try:
        return session.run(None, feeds)
    except ExecutionError as exc:
        if not feeds.made_up:
            raise
        first = str(exc).splitlines()[0]
        raise GreenrtError(f"the model rejects the made-up input shapes ({feeds.made_up}): {first}\n"
                           "give real inputs with --inputs IN.npz, or sizes for the dynamic dims with --shapes "
                           "NAME:1x3x224x224") from None


def _describe(value) -> str:
    a = np.asarray(value)
    if a.dtype.kind in "fc" and a.size:
        return f"{a.dtype} {list(a.shape)} min {np.nanmin(a.real):.4g} max {np.nanmax(a.real):.4g}"
    return f"{a.dtype} {list(a.shape)}"


def cmd_run(args) -> int:
    import time

    session, feeds = _session_and_inputs(args)
    start = time.perf_counter()
    outputs = _run_session(session, feeds)
    elapsed = time.perf_counter() - start
    for arg, value in zip(session.get_outputs(), outputs):
        console.print(f"{arg.name}: {_describe(value)}", highlight=False)
    console.print(f"ran in {elapsed * 1e3:.1f} ms on {session.device.type} (first call, includes warm-up)",
                  highlight=False)
    if args.save_outputs:
        np.savez(args.save_outputs, **{a.name: np.asarray(v) for a, v in zip(session.get_outputs(), outputs)})
        console.print(f"saved outputs to {args.save_outputs}")
    return EXIT_OK


def _compare_reference(args, session) -> tuple[str, list[str]]:
    """The ONNX file onnxruntime runs (--reference, else the engine's recorded model, else MODEL) and the extra
    outputs an engine built with --outputs returns after the graph outputs."""
    if session.header is None:
        return args.reference or args.model, []
    config = session.header.get("config", {})
    reference = args.reference or config.get("model")
    if not reference:
        raise GreenrtError("this engine records no source model; pass the ONNX file with --reference")
    return reference, list(config.get("outputs") or [])


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _explain(v, with_closest: bool) -> list[str]:
    """Plain lines saying why an output is not a plain match: the error, the tolerance, the spread and its pair."""
    from .compare import WITHIN_SPREAD

    lines = [f"{v.name}: {v.verdict}" + (f" (K={v.k:g})" if v.verdict == WITHIN_SPREAD else "")]
    err = f"greenrt vs onnxruntime: max abs err {_fmt(v.max_abs)} (rel {_fmt(v.max_rel)}) > tolerance {_fmt(v.tolerance)}"
    discrete = v.note.startswith("discrete output")  # judged element by element, not by K x spread
    if v.spread is not None and v.spread.usable and not discrete:
        err += f", {'<=' if v.ok else '>'} allowed {_fmt(v.allowed)} = max(tolerance, K={v.k:g} x spread)"
    lines.append(err)
    if v.spread is not None and v.spread.pair is not None:
        a, b = v.spread.pair
        lines.append(f"reference spread {_fmt(v.spread.max_abs)} abs (rel {_fmt(v.spread.max_rel)}): {a} vs {b}")
    if with_closest and v.closest is not None:
        lines.append(f"closest reference to greenrt: {v.closest[0]}, max abs err {_fmt(v.closest[1])}")
    if v.note:
        lines.append(v.note)
    return lines


def cmd_compare(args) -> int:
    from . import compare
    from .per_layer import refuse_per_layer_flags, run_cli

    if getattr(args, "per_layer", False):
        return run_cli(args, console, err_console)
    refuse_per_layer_flags(args)
    session, feeds = _session_and_inputs(args)
    reference, extras = _compare_reference(args, session)
    ours = _run_session(session, feeds)
    theirs = compare.run_onnxruntime(reference, feeds, extras) if extras else compare.run_onnxruntime(reference, feeds)
    names = [o.name for o in session.get_outputs()]
    if len(theirs) != len(names):
        raise GreenrtError(f"greenrt returns {len(names)} outputs ({names}) but onnxruntime returns {len(theirs)} for "
                           f"{reference}: is --reference the model this engine was built from?")
    verdicts = [compare.judge(n, o, {"onnxruntime": t}, args.rtol, args.atol) for n, o, t in zip(names, ours, theirs)]
    spreads = None
    if not args.no_spread and not all(v.ok for v in verdicts):
        console.print(f"over the tolerance: measuring the references' own spread (onnxruntime at "
                      f"{len(compare.ORT_LEVELS)} optimization levels, onnx.reference up to "
                      f"{args.reference_timeout:g}s)", highlight=False)
        spreads = compare.reference_spread(reference, feeds, extras, timeout_s=args.reference_timeout)
        verdicts = [v if v.ok or n not in spreads else
                    compare.judge(n, o, {"onnxruntime": t, **spreads[n].references}, args.rtol, args.atol,
                                  spreads[n], args.spread_multiple)
                    for v, n, o, t in zip(verdicts, names, ours, theirs)]

    table = Table(title=f"greenrt ({session.device.type}) vs onnxruntime (cpu)")
    for col in ("output", "shape", "max abs err", "max rel err", "verdict"):
        table.add_column(col)
    if spreads is not None:
        table.add_column("ref spread abs / rel")
    for v in verdicts:
        style = {compare.MATCH: "green", compare.WITHIN_SPREAD: "yellow"}.get(v.verdict, "red")
        shown = "within spread" if v.verdict == compare.WITHIN_SPREAD else v.verdict
        cells = [escape(v.name), str(v.shape), _fmt(v.max_abs), _fmt(v.max_rel), f"[{style}]{shown}[/{style}]"]
        if spreads is not None:
            sp = spreads.get(v.name)
            cells.append(f"{_fmt(sp.max_abs)} / {_fmt(sp.max_rel)}" if sp is not None else "not measured")
        table.add_row(*cells)
    console.print(table)
    for v in verdicts:
        if v.verdict != compare.MATCH:
            print("\n  ".join(_explain(v, with_closest=spreads is not None)))
    if spreads:
        skipped = next(iter(spreads.values())).skipped
        ran = next(iter(spreads.values())).references
        print("references: " + ", ".join(ran) + "".join(f"; {label}: {why}" for label, why in skipped.items()))
    worst = (compare.MISMATCH if any(v.verdict == compare.MISMATCH for v in verdicts) else
             compare.WITHIN_SPREAD if any(v.verdict == compare.WITHIN_SPREAD for v in verdicts) else compare.MATCH)
    print(f"verdict: {worst}" + (f" (K={args.spread_multiple:g})" if worst == compare.WITHIN_SPREAD else ""))
    return EXIT_MISMATCH if worst == compare.MISMATCH else EXIT_OK
