"""Inputs and references for the commands that run a model (run, compare, compare --per-layer): one place that
loads an .npz or draws random inputs, says which shapes it made up, and finds the ONNX file onnxruntime runs."""

from __future__ import annotations

from ..errors import ExecutionError, GreenrtError


class InputFeeds(dict):
    """Feeds by input name, and which shapes were made up (dynamic dims nobody gave a size): '' if none."""

    made_up = ""


def session_feeds(session, args, err_console, hint: str = "") -> InputFeeds:
    """``args.inputs`` (.npz), else random inputs for ``session``'s inputs (``args.seed``, ``args.shapes``; ids kept
    inside their tables); made-up shapes are reported on ``err_console``, followed by ``hint``."""
    from ..build.inputs import index_bounds, load_inputs, parse_shapes, random_feeds

    if args.inputs:
        return InputFeeds(load_inputs(args.inputs))
    bounds = index_bounds(session.plan, session.executor.constants)
    drawn = random_feeds(session.get_inputs(), parse_shapes(args.shapes), seed=args.seed, int_bounds=bounds)
    feeds = InputFeeds(drawn.arrays)
    if drawn.made_up:
        feeds.made_up = drawn.describe_made_up()
        err_console.print(f"random inputs with made-up shapes (dynamic dims set to 1): {feeds.made_up}{hint}",
                          highlight=False, markup=False)
    return feeds


def run_session(session, feeds: InputFeeds) -> list:
    """session.run; when the model rejects made-up shapes, ask for real inputs rather than show a node failure."""
    try:
        return session.run(None, feeds)
    except ExecutionError as exc:
        if not feeds.made_up:
            raise
        first = str(exc).splitlines()[0]
        raise GreenrtError(f"the model rejects the made-up input shapes ({feeds.made_up}): {first}\n"
                           "give real inputs with --inputs IN.npz, or sizes for the dynamic dims with --shapes "
                           "NAME:1x3x224x224") from None


def compare_reference(args, session) -> tuple[str, list[str]]:
    """The ONNX file onnxruntime runs (--reference, else the engine's recorded model, else MODEL) and the extra
    outputs an engine built with --outputs returns after the graph outputs."""
    if session.header is None:
        return args.reference or args.model, []
    config = session.header.get("config", {})
    reference = args.reference or config.get("model")
    if not reference:
        raise GreenrtError("this engine records no source model; pass the ONNX file with --reference")
    return str(reference), list(config.get("outputs") or [])
