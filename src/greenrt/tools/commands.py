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
from .feeds import compare_reference, run_session, session_feeds

def _console(stderr: bool = False) -> Console:
    """Rich's console; written to a file or a pipe (no terminal, no $COLUMNS) it is 160 columns wide instead of
    rich's 80, so saved `inspect` and `bench` tables keep their layer names and numbers rather than ellipses."""
    import os

    stream = sys.stderr if stderr else sys.stdout
    width = None if os.environ.get("COLUMNS") or stream.isatty() else 160
    return Console(stderr=stderr, width=width)


console = _console()
err_console = _console(stderr=True)


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
        opt_level=args.opt_level,
        timing_cache=args.timing_cache,
        int8=args.int8,
        fp8=getattr(args, "fp8", False),
        calib=args.calib,
        calib_method=args.calib_method or "",
        percentile=args.percentile,
        calib_cache=args.calib_cache,
        calib_batch=args.calib_batch,
        calib_preprocess=args.calib_preprocess,
        bias_correction=not args.no_bias_correction,
        smooth=args.smooth,
        max_accuracy_drop=args.max_accuracy_drop,
        metric=args.metric,
        accuracy_data=args.accuracy_data,
    )
    output = args.output or str(Path(args.model).with_suffix(".engine"))
    with console.status("building") as status:
        build_engine(args.model, output, config, log=lambda msg: console.print(escape(msg), highlight=False),
                     progress=lambda what, done, total: status.update(
                         f"building: {what}, {'sample' if what == 'calibrating' else 'layer'} {done} of "
                         f"{total if total is not None else '?'}"))
    return EXIT_OK


def cmd_calibrate(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..build.calibration import calibrate, model_input_names, open_calibration_data
    from ..build.calibration.histogram import DEFAULT_METHOD as DEFAULT_CALIB_METHOD

    model = Path(args.model)
    if model.suffix == ".engine" and args.check:
        model, args.calib_cache = _engine_calibration(model, args.calib_cache)
    elif model.suffix != ".onnx" or not model.is_file():
        raise GreenrtError(f"greenrt calibrate takes an .onnx file (or, with --check, an INT8 engine); {model} is "
                           "not one")
    cache = Path(args.calib_cache or model.with_suffix(".calib.json"))
    if args.check:
        return _calibration_drift(model, cache, args)
    source = None
    if args.calib:
        source = open_calibration_data(args.calib, model_input_names(model), args.calib_preprocess)
    with Progress(TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("calibrating", total=source.samples if source else None)
        method = args.calib_method or DEFAULT_CALIB_METHOD
        result = calibrate(model, source, method=method, percentile=args.percentile,
                           batch_size=args.calib_batch, cache=cache,
                           progress=lambda done, total: bar.update(task, completed=done, total=total))
    how = "reused (made for this model, calibrator and settings)" if result.reused else "written"
    console.print(f"{escape(str(cache))}: {how}; {result.method} over {result.samples} samples of "
                  f"{escape(result.data)}, {len(result.ranges)} tensors", highlight=False)
    stats = result.stats
    table = Table(title="widest clipping (threshold / max |x| seen)")
    for col in ("tensor", "threshold", "max |x|", "kept"):
        table.add_column(col, justify="left" if col == "tensor" else "right")
    ratio = {k: v / stats[k]["amax"] for k, v in result.ranges.items() if stats.get(k, {}).get("amax")}
    for name in sorted(ratio, key=ratio.get)[:8]:
        table.add_row(escape(name), f"{result.ranges[name]:.4g}", f"{stats[name]['amax']:.4g}", f"{ratio[name]:.1%}")
    if ratio:
        console.print(table)
    bad = {k: s["nonfinite"] for k, s in stats.items() if s.get("nonfinite")}
    if bad:
        first = next(iter(bad))
        console.print(f"[yellow]warning:[/yellow] {len(bad)} tensor(s) held NaN or inf on this data (left out of "
                      f"their ranges), first {escape(first)}: {bad[first]} values", highlight=False)
    return EXIT_OK


def _engine_calibration(engine: Path, cache: str | None) -> tuple[Path, str]:
    """The model and calibration cache an INT8 engine was built from (its header's build config)."""
    from ..plan.engine_file import inspect_engine_header

    config = inspect_engine_header(engine).get("config", {})
    if not config.get("int8"):
        raise GreenrtError(f"{engine} is not an INT8 engine (built without --int8): it has no calibration to check")
    cache = cache or config.get("calib_cache")
    if not cache:
        raise GreenrtError(f"{engine} was built without --calib-cache, so the calibration's statistics were not "
                           "kept; check against the model and a cache: greenrt calibrate MODEL.onnx --calib-cache "
                           "FILE --check DATA")
    model = Path(config.get("model", ""))
    if not model.is_file():
        raise GreenrtError(f"{engine} was built from {model}, which is not there any more; run greenrt calibrate "
                           f"MODEL.onnx --calib-cache {cache} --check DATA with the model's path")
    return model, cache


def _calibration_drift(model: Path, cache: Path, args) -> int:
    from ..build.calibration import check_drift, graph_sha256, load_cache, model_input_names, open_calibration_data

    if not cache.exists():
        raise GreenrtError(f"--check compares new data with a calibration: {cache} does not exist (calibrate first, "
                           "or name it with --calib-cache)")
    calibration = load_cache(cache, graph_sha256(model))  # with the calibrator and settings it was made with
    source = open_calibration_data(args.check, model_input_names(model), args.calib_preprocess)
    drifts = check_drift(model, calibration, source, batch_size=args.calib_batch)
    at_risk = sorted((d for d in drifts if d.risk), key=lambda d: (-d.clipped_now, d.range_ratio))
    table = Table(title=f"drift of {escape(args.check)} against {escape(str(cache))}")
    for col in ("tensor", "clipped at calibration", "clipped now", "max |x| now / then", "risk"):
        table.add_column(col, justify="left" if col in ("tensor", "risk") else "right")
    worst = sorted(drifts, key=lambda d: (not d.risk, -d.clipped_now, d.range_ratio))[:10]
    for d in worst:
        table.add_row(escape(d.tensor), f"{d.clipped_then:.3%}", f"{d.clipped_now:.3%}", f"{d.range_ratio:.2f}",
                      escape(d.risk or "-"))
    console.print(table)
    if at_risk:
        console.print(f"recalibrate: {len(at_risk)} of {len(drifts)} tensors at risk on this data (first "
                      f"{escape(at_risk[0].tensor)}: {escape(at_risk[0].risk)})", highlight=False)
        return EXIT_MISMATCH
    console.print(f"the calibration still fits this data: none of {len(drifts)} tensors clips much more often or "
                  "uses under half of its range", highlight=False)
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(device=args.device, precision=args.precision, opt_level=args.opt_level, duration_s=args.duration)


# -- inspect ---------------------------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    if args.what == "ops":
        return _inspect_ops(args.opset)
    code = _inspect_model(args.model)
    if getattr(args, "json", None):
        _inspect_json(args.model, args.json)
    if getattr(args, "export", None):
        _inspect_export(args.model, args.export)
    if getattr(args, "profile", False) or getattr(args, "plot", None):
        _inspect_profile(args)
    return code


def _inspect_json(path: str, out: str) -> None:
    """The engine's header (minus the raw plan) and its layers as one JSON document, for scripts."""
    from ..plan.engine_file import inspect_engine_header
    from ..plan.plan import Plan
    from .profile_layers import implementation, step_precision

    if Path(path).suffix == ".onnx":
        raise GreenrtError(f"--json describes an engine; {path} is an ONNX file: build it first (greenrt build "
                           f"{path}) and inspect the engine")
    header = inspect_engine_header(path)
    plan = Plan.from_json(header["plan"])
    channels_last = bool(header.get("config", {}).get("channels_last"))
    doc = {k: v for k, v in header.items() if k != "plan"}
    doc["path"] = str(path)
    doc["layers"] = [{"index": i, "name": step.name, "op": (step.domain + "." if step.domain else "") + step.op_type,
                      "fused_ops": _fused_ops(step), "precision": step_precision(step),
                      "layout": _layout(step, channels_last), "implementation": implementation(step),
                      "tactic": step.tactic} for i, step in enumerate(plan.steps)]
    Path(out).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    console.print(f"wrote {escape(out)}", highlight=False)


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


def _mib(n) -> str:
    return f"{n / 2**20:.2f} MiB" if isinstance(n, (int, float)) else "-"


def _fused_ops(step) -> str:
    """What a greenrt fused step computes, as the ONNX ops it replaced ('-' for a plain ONNX op)."""
    a = step.attrs
    act = a.get("activation") or ""
    act_text = f" + {act}" + (f"({', '.join(f'{v:g}' for v in a.get('activation_params') or [])})"
                               if a.get("activation_params") else "") if act else ""
    present = [bool(n) for n in step.inputs] + [False] * 4
    if step.domain != "greenrt":
        return "-"
    if step.op_type == "FusedConv":
        return "Conv" + (" + bias" if present[2] else "") + (" + residual Add" if present[3] else "") + act_text
    if step.op_type == "FusedMatMul":
        return "MatMul" + (" (W as N x K)" if a.get("trans_w") else "") + (" + bias" if present[2] else "") + act_text
    if step.op_type == "Gelu":
        return "GELU " + ("(tanh)" if a.get("approximate") == "tanh" else "(erf)") + ": Div, Erf, Add, Mul, Mul"
    if step.op_type == "HardSwish":
        return "HardSwish: Add, Clip, Mul, Div"
    if step.op_type == "LayerNormalization":
        return "LayerNorm: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul" + (", Add" if present[2] else "")
    if step.op_type == "ScaledDotProductAttention":
        return "attention: MatMul(Q, K^T), scale, " + ("mask Add, " if present[3] else "") + "Softmax, MatMul(V)"
    return step.op_type


def _layout(step, channels_last: bool) -> str:
    """NHWC for the 4-D float values of a channels-last engine (converted once, at the input), else NCHW/-."""
    spec = next((s for s in step.output_specs if s is not None), None)
    if spec is None or spec.shape is None or len(spec.shape) != 4 or spec.dtype not in (1, 10, 16):
        return "-"
    return "NHWC" if channels_last else "NCHW"


def _layers_table(plan, channels_last: bool) -> Table:
    from .profile_layers import implementation, step_precision

    table = Table(title=f"layers: {len(plan.steps)} steps"
                        + (f" (+{sum(1 for _ in plan.all_steps()) - len(plan.steps)} in subgraphs)"
                           if plan.subplans else ""))
    for col in ("#", "layer", "op", "fused ops", "precision", "layout", "implementation"):
        table.add_column(col, justify="right" if col == "#" else "left")
    for i, step in enumerate(plan.steps):
        op = (step.domain + "." if step.domain else "") + step.op_type
        style = "bold" if step.domain == "greenrt" else None
        table.add_row(str(i), escape(step.name or "-"), op, escape(_fused_ops(step)), step_precision(step),
                      _layout(step, channels_last), implementation(step), style=style)
    return table


def _inspect_engine(path: str) -> int:
    from collections import Counter

    from ..plan.engine_file import inspect_engine_header
    from ..plan.plan import Plan

    header = inspect_engine_header(path)
    cfg = header.get("config", {})
    console.print(f"[bold]{escape(str(path))}[/bold]: greenrt engine, format {header['format_version']}",
                  highlight=False)
    versions = ", ".join(f"{k} {v}" for k, v in header.get("versions", {}).items() if v is not None)
    device = header.get("device") or {}
    console.print(f"built with {escape(versions)} for {escape(str(device.get('name') or device.get('type')))}",
                  highlight=False)
    elsewhere = (header.get("report") or {}).get("built_for_another_device")
    if isinstance(elsewhere, dict):
        console.print(f"built on {escape(str((elsewhere.get('built_on') or {}).get('name')))} without that GPU, "
                      "its tactics from a timing cache taken on it", highlight=False)
    console.print(f"config: precision {cfg.get('precision')}, channels_last {cfg.get('channels_last')}, "
                  f"workspace {cfg.get('workspace')}, optimize {cfg.get('optimize', True)}", highlight=False)
    if cfg.get("build_command"):
        console.print(f"built by: {escape(str(cfg['build_command']))}", highlight=False)
    plan = Plan.from_json(header["plan"])

    table = Table(title="inputs and outputs")
    for col in ("", "name", "type", "shape"):
        table.add_column(col)
    from ..runtime.session import node_arg

    for kind, specs in (("input", [s for s in plan.inputs if s.name not in plan.constants]), ("output", plan.outputs)):
        for s in specs:
            arg = node_arg(s)
            table.add_row(kind, escape(arg.name), arg.type, str(arg.shape))
    console.print(table)

    profiles = header.get("profiles", [])
    if profiles:
        from ..plan.profiles import Profile

        table = Table(title=f"optimization profiles: {len(profiles)}")
        for col in ("profile", "input", "min", "opt", "max"):
            table.add_column(col)
        for i, p in enumerate(profiles):
            for name, (lo, opt, hi) in Profile.from_json(p).shapes.items():
                table.add_row(str(i), escape(name), *("x".join(map(str, d)) for d in (lo, opt, hi)))
        console.print(table)
    else:
        console.print("optimization profiles: none (dynamic dims stay dynamic)", highlight=False)

    report = header.get("report", {})
    if "passes" in report:
        nodes = report.get("nodes", {})
        table = Table(title=f"graph passes: {nodes.get('before')} -> {nodes.get('after')} nodes")
        for col in ("pass", "rewrites", "rule"):
            table.add_column(col)
        for r in report["passes"]:
            table.add_row(r["name"], str(r["count"]), escape(r["rule"]), style=None if r["count"] else "dim")
        console.print(table)
    else:
        console.print("graph passes: not run (built with --no-optimize)", highlight=False)

    prec = report.get("precision")
    if isinstance(prec, dict):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(prec.get("counts", {}).items()))
        console.print(f"precision {prec.get('default')}: {counts}; {prec.get('casts_inserted', 0)} cast(s) inserted; "
                      f"range fallback saw {prec.get('observed_batches', 0)} sample batch(es)", highlight=False)
        kept = prec.get("kept_or_overridden", [])
        if kept:
            table = Table(title=f"layers not in {prec.get('default')}: {len(kept)}")
            for col in ("node", "op", "precision", "reason"):
                table.add_column(col)
            for n in kept:
                table.add_row(escape(str(n["node"])), n["op_type"], n["precision"], escape(str(n["reason"])))
            console.print(table)
        for w in prec.get("warnings", []):
            console.print(f"precision warning: {escape(str(w))}", highlight=False)
    else:
        rest = " (the layers not in INT8)" if report.get("int8") else " throughout"
        console.print(f"precision: {cfg.get('precision', 'fp32')}{rest}", highlight=False)
    from .precision_flow import precision_flow

    console.print(f"precision flow: {precision_flow(plan).summary()}", highlight=False)
    int8 = report.get("int8")
    if isinstance(int8, dict):
        cal = int8.get("calibration", {})
        console.print(f"int8: {int8.get('int8_layers', 0)} layer(s) INT8 ({int8.get('int8_outputs', 0)} hand INT8 "
                      f"to INT8 readers), {int8.get('float_layers', 0)} kept float; calibration {cal.get('method')} "
                      f"over {cal.get('samples')} samples of {escape(str(cal.get('data')))}"
                      + (f" (cache {escape(str(cal['cache']))}{', reused' if cal.get('reused') else ''})"
                         if cal.get("cache") else ""), highlight=False)
        for k in int8.get("kept_float", [])[:20]:
            console.print(f"  {escape(str(k['node']))} ({k['op_type']}): float - {escape(str(k['reason']))}",
                          highlight=False)
        s8 = int8.get("accuracy_search")
        if s8:
            console.print(f"int8 accuracy budget: {s8['metric']} drop {s8['final_drop']:.4g} (all INT8 "
                          f"{s8['all_int8_drop']:.4g}, budget {s8['budget']:g}, {'met' if s8['met'] else 'NOT met'}) "
                          f"with {len(s8['kept_float'])} layer(s) float, {s8['trials']} trial engines; rebuild "
                          f"without the search: --layer-precision '{escape(s8['layer_precision'])}'",
                          highlight=False)
    search = report.get("accuracy_search")
    if search:
        console.print(f"accuracy search: {search['kept_fp32']} of {search['layers']} layers kept fp32 for max error "
                      f"{search['target']:g} on {', '.join(search['outputs'])}: {search['max_rel_err_before']:.3g} "
                      f"-> {search['max_rel_err_after']:.3g} ({len(search['trials'])} trials)", highlight=False)
    accuracy = report.get("accuracy_vs_fp32_unoptimized", [])
    if accuracy:
        table = Table(title="accuracy vs the unoptimized fp32 model (max rel err)")
        for col in ("inputs", "shapes", "outputs"):
            table.add_column(col)
        for a in accuracy:
            table.add_row(escape(a["label"]), escape(str(a["shapes"])),
                          ", ".join(f"{escape(k)} {v:.2e}" for k, v in a["max_rel_err"].items()))
        console.print(table)
    for s in report.get("skipped_checks", []):
        console.print(f"skipped {escape(s['check'])}: {escape(s['reason'])}", highlight=False)

    memory = report.get("memory", [])
    if memory:
        table = Table(title="memory plan (activations, lifetime-based reuse)")
        for col in ("at", "shapes", "peak with reuse", "naive", "saved"):
            table.add_column(col)
        for m in memory:
            peak, naive = m.get("peak_bytes"), m.get("naive_bytes")
            saved = f"{100 * (1 - peak / naive):.0f}%" if peak is not None and naive else "-"
            table.add_row(escape(str(m.get("label", m.get("profile")))), escape(str(m.get("shapes", ""))),
                          _mib(peak), _mib(naive), saved)
        console.print(table)
    weights = sum(1 for v in plan.constants.values() if not isinstance(v, dict))
    console.print(f"weights: {weights} tensors", highlight=False)
    _print_tactics(report.get("tactics"))

    console.print(_layers_table(plan, bool(cfg.get("channels_last"))))
    counts = Counter((s.domain + "." if s.domain else "") + s.op_type for s in plan.all_steps())
    console.print(_op_count_table(f"plan: {sum(counts.values())} steps", counts))
    return EXIT_OK


def _print_tactics(tactics: dict | None) -> None:
    """The tactic stage: per layer with a choice, every candidate's time, the winner first, and where it came from."""
    if not tactics:
        console.print("tactics: none recorded (an engine from before the tactic stage)", highlight=False)
        return
    _print_engine_choice(tactics.get("engine"))
    layers = tactics.get("layers", [])
    head = (f"tactics (opt level {tactics.get('opt_level')}, at {tactics.get('shapes') or '-'}): {tactics.get('timed', 0)} "
            f"layer(s) timed, {tactics.get('cached', 0)} from the timing cache")
    if not layers:
        console.print(escape(head + (f"; {tactics['reason']}" if tactics.get("reason") else "")), highlight=False)
        return
    table = Table(title=escape(head))
    for col in ("layer", "op", "winner", "candidates (ms, fastest first)", "from"):
        table.add_column(col)
    for layer in layers:
        timings = sorted(layer.get("timings_ms", {}).items(), key=lambda kv: kv[1])
        cells = ", ".join(f"{name} {ms:.4f}" for name, ms in timings)
        if layer.get("rejected"):
            cells += "; rejected: " + ", ".join(f"{k} ({v})" for k, v in layer["rejected"].items())
        table.add_row(escape(layer.get("layer", "")), escape(layer.get("op", "")), escape(layer.get("winner", "")),
                      escape(cells), "cache" if layer.get("cached") else "timed")
    console.print(table)


def _print_engine_choice(choice: dict | None) -> None:
    """How the engine runs as a whole: greenrt's executor, or compiled by Inductor, and the timings that chose it."""
    if not choice:
        return
    runs = "compiled by Inductor (code built at first run into the local compiled-code cache)" \
        if choice.get("winner") == "inductor" else "on greenrt's executor"
    timings = ", ".join(f"{k} {v:.4f} ms" for k, v in sorted(choice.get("timings_ms", {}).items(), key=lambda kv: kv[1]))
    why = timings or choice.get("reason") or ""
    source = "; from the timing cache" if choice.get("cached") else ""
    console.print(escape(f"engine: runs {runs}" + (f" ({why}{source})" if why else "")), highlight=False)


def _engine_for(path: str, device: str | None = None):
    """(EngineFile, built_here) for an engine path, or an ONNX file built with greenrt.build's defaults on
    ``device`` (cpu by default) into a temporary engine."""
    import tempfile

    from ..plan.engine_file import read_engine
    from ..runtime.session import is_engine_file

    if is_engine_file(path):
        return read_engine(path, device=device, allow_mismatch=True), False
    from ..build import BuildConfig, build_engine

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.engine"
        with console.status("building the optimized engine (greenrt build defaults)"):
            build_engine(path, out, BuildConfig(device=device or "cpu"), log=lambda msg: None)
        return read_engine(out, device=device or "cpu"), True


def _inspect_export(path: str, output: str) -> None:
    from collections import Counter

    import onnx

    from .export_onnx import GREENRT, plan_to_onnx

    engine, built = _engine_for(path)
    model = plan_to_onnx(engine.plan, engine.weights, doc=f"greenrt optimized graph of {path}")
    large = model.ByteSize() > 1.8 * 2**30  # protobuf's 2 GiB limit: weights beside it in OUT.onnx.data
    onnx.save(model, output, save_as_external_data=large, location=Path(output).name + ".data" if large else None)
    fused = Counter((n.op_type, n.overload) for n in model.graph.node if n.domain == GREENRT)
    if model.functions:
        table = Table(title="greenrt fused ops as model-local ONNX functions (domain greenrt)")
        for col in ("function", "overload", "nodes", "body (standard ONNX ops)"):
            table.add_column(col)
        for f in model.functions:
            body = ", ".join(n.op_type for n in f.node if n.op_type not in ("Constant", "Identity"))
            table.add_row(f.name, f.overload, str(fused[f.name, f.overload]), body)
        console.print(table)
    console.print(f"wrote {escape(output)}{' (+ .data)' if large else ''}: {len(model.graph.node)} nodes "
                  f"({sum(fused.values())} greenrt fused nodes, defined by {len(model.functions)} model-local ONNX "
                  f"functions), {len(model.graph.initializer)} initializers"
                  + (" (built with greenrt build's defaults for cpu first)" if built else ""), highlight=False)


def _inspect_profile(args) -> None:
    from ..build.inputs import index_bounds, parse_shapes, random_feeds
    from ..onnx.dtypes import numpy_to_torch
    from ..plan.profiles import Profile, opt_shapes
    from ..runtime.runner import Runner
    from ..runtime.session import node_arg, resolve_device
    from .profile_layers import plot_layers, profile_layers

    device = resolve_device(args.device or "cpu")
    engine, _ = _engine_for(args.model, device.type)
    cfg = engine.header.get("config", {})
    runner = Runner(engine.plan, engine.weights, device, precision=cfg.get("precision"),
                    channels_last=bool(cfg.get("channels_last")))
    shapes = parse_shapes(args.shapes or "")
    profiles = engine.header.get("profiles", [])
    if profiles:  # the first profile's opt shapes for inputs not given
        shapes = {**opt_shapes(Profile.from_json(profiles[0])), **shapes}
    constants = set(engine.plan.constants)
    specs = [node_arg(s) for s in engine.plan.inputs if s.name not in constants]
    drawn = random_feeds(specs, shapes, seed=args.seed, int_bounds=index_bounds(engine.plan, runner.executor.constants))
    if drawn.made_up:
        err_console.print(f"random inputs with made-up shapes (dynamic dims set to 1): {drawn.describe_made_up()}",
                          highlight=False, markup=False)
    feeds = {k: numpy_to_torch(np.asarray(v), device) for k, v in drawn.arrays.items()}
    with console.status(f"timing each layer on {device.type} ({args.runs} runs)"):
        prof = profile_layers(runner, feeds, runs=args.runs)
    total = prof.total_ms or 1.0
    table = Table(title=f"slowest {min(args.top, len(prof.layers))} of {len(prof.layers)} layers on {device.type} "
                        f"(median of {prof.runs} runs, inputs {prof.shapes})")
    for col in ("#", "layer", "op", "implementation", "precision", "ms", "share", "cumulative"):
        table.add_column(col, justify="right" if col in ("#", "ms", "share", "cumulative") else "left")
    cumulative = 0.0
    for layer in prof.slowest(args.top):
        cumulative += layer.ms
        table.add_row(str(layer.index), escape(layer.name), layer.op, layer.implementation, layer.precision,
                      f"{layer.ms:.4f}", f"{100 * layer.ms / total:.1f}%", f"{100 * cumulative / total:.1f}%")
    console.print(table)
    console.print(f"sum of layers {prof.total_ms:.3f} ms; full run {prof.full_run_ms:.3f} ms (the same eager executor "
                  f"without per-layer timing; an engine session on CUDA replays a CUDA graph instead)", highlight=False)
    if args.plot:
        missing = plot_layers(prof, args.plot, args.top)
        if missing:
            err_console.print(f"no plot: {missing}", highlight=False, markup=False)
        else:
            console.print(f"wrote {escape(args.plot)}", highlight=False)


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
def _session_and_inputs(args):
    from ..runtime.session import InferenceSession

    session = InferenceSession(args.model, device=args.device, allow_mismatch=args.allow_mismatch)
    return session, session_feeds(session, args, err_console)


def _describe(value) -> str:
    a = np.asarray(value)
    if a.dtype.kind in "fc" and a.size:
        return f"{a.dtype} {list(a.shape)} min {np.nanmin(a.real):.4g} max {np.nanmax(a.real):.4g}"
    return f"{a.dtype} {list(a.shape)}"


def cmd_run(args) -> int:
    import time

    session, feeds = _session_and_inputs(args)
    start = time.perf_counter()
    outputs = run_session(session, feeds)
    elapsed = time.perf_counter() - start
    for arg, value in zip(session.get_outputs(), outputs):
        console.print(f"{arg.name}: {_describe(value)}", highlight=False)
    console.print(f"ran in {elapsed * 1e3:.1f} ms on {session.device.type} (first call, includes warm-up)",
                  highlight=False)
    if args.save_outputs:
        np.savez(args.save_outputs, **{a.name: np.asarray(v) for a, v in zip(session.get_outputs(), outputs)})
        console.print(f"saved outputs to {args.save_outputs}")
    return EXIT_OK


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
    if args.rtol is None:
        args.rtol = compare.engine_rtol((session.header or {}).get("config", {}))
    reference, extras = compare_reference(args, session)
    ours = run_session(session, feeds)
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


# -- bench -----------------------------------------------------------------------------------------------------
def cmd_bench(args) -> int:
    from .bench import run_bench_command

    return run_bench_command(args, console, err_console)
