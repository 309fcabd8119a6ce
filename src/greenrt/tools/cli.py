"""The `greenrt` command line.

Exit codes, stable for scripts: 0 ok / outputs match, 1 outputs mismatch (or conformance regressions),
2 could not run (bad file, unsupported op, bad input or arguments), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys

from . import arguments as arg

from .exit_codes import EXIT_ERROR, EXIT_MISMATCH, EXIT_OK  # noqa: F401 (re-exported for scripts)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors also exit 2, with the reason on stderr
        self.print_usage(sys.stderr)
        print(f"greenrt: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """What run and compare share: the model, where it runs, and its inputs (a file, or random at --shapes)."""
    arg.add_model(p)
    arg.add_device(p)
    arg.add_inputs(p)
    arg.add_shapes(p, meaning="sizes the dynamic dims of random inputs")
    arg.add_seed(p)
    arg.add_allow_mismatch(p)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _alpha(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1] or auto, got {text!r}") from None


def _add_calibration_args(p, cache_default: str) -> None:
    """INT8 calibration's options, the same in `greenrt calibrate` and `greenrt build --int8`."""
    g = p.add_argument_group("INT8 calibration")
    g.add_argument("--calib", metavar="DATA",
                   help="an .npz file or a folder of them (one array per input, first axis = samples), a folder of "
                        "images (one image input; see --calib-preprocess), or module:function returning feed dicts")
    g.add_argument("--calib-method", default=None, choices=("entropy", "percentile", "minmax", "mse"),
                   help="how a tensor's threshold is read from its histogram: percentile (the default for INT8: of "
                        "|x|, see --percentile), entropy (TensorRT's KL; it clipped normalized image inputs at their "
                        "background value in the accuracy suite), minmax (the default for --fp8: float8 keeps its "
                        "relative precision at every magnitude, so clipping only loses), mse")
    g.add_argument("--percentile", type=float, default=99.99, help="--calib-method percentile: the percentile of "
                                                                    "|x| kept unclipped (default 99.99)")
    g.add_argument("--calib-cache", metavar="FILE", help=f"the calibration cache to reuse or write ({cache_default})")
    g.add_argument("--calib-batch", type=int, default=8, metavar="N", help="samples per run (default 8)")
    g.add_argument("--calib-preprocess", metavar="SPEC",
                   help="images: resize=256,crop=224,mean=0.485/0.456/0.406,std=0.229/0.224/0.225,layout=nchw "
                        "(the default)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="greenrt", description="ONNX inference optimizer and runtime over torch")
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("build", help="optimize a model and write one engine file",
                       epilog=arg.example("greenrt build model.onnx --fp16 --shapes image:1x3x224x224/32x3x224x224/"
                                          "256x3x224x224 --inputs samples.npz -o model.engine"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    arg.add_model(p, "an .onnx file")
    p.add_argument("-o", "--output", help="engine file to write (default MODEL.engine)")
    arg.add_device(p, meaning="target device (default cuda if present)")
    prec = p.add_mutually_exclusive_group()
    arg.add_precision(prec, default=None, meaning="engine precision; --fp16, --bf16, --tf32 say the same")
    for name in ("fp16", "bf16", "tf32"):
        prec.add_argument(f"--{name}", dest="precision", action="store_const", const=name,
                          help=f"build in {name} (the same as --precision {name})")
    p.add_argument("--int8", action="store_true",
                   help="convs and GEMMs in INT8 from a calibration (--calib DATA or --calib-cache FILE), the rest in "
                        "the engine precision; keep chosen layers float with --layer-precision 'NAME=fp16'")
    p.add_argument("--fp8", action="store_true",
                   help="as --int8, with the convs and GEMMs in float8 e4m3 (Hopper's FP8 tensor cores): the same "
                        "calibration, per-tensor activation scales threshold / 448, per-channel weights")
    p.add_argument("--layer-precision", default="",
                   help="per-layer precision by node name or op type, wildcards: 'encoder.*.softmax=fp32,Softmax=fp32'")
    arg.add_shapes(p, profiles=True)
    p.add_argument("--workspace", help="activation memory limit at the profiles' max shapes, e.g. 4G")
    arg.add_inputs(p, repeatable=True, meaning="of sample inputs for the fp16 range fallback, --max-error and the "
                                                 "checks (default: random inputs at shapes known to suit the model)")
    p.add_argument("--outputs", default="", metavar="NAMES",
                   help="comma-separated intermediate tensors to return as extra engine outputs, e.g. the logits "
                        "under a final Softmax")
    p.add_argument("--max-error", type=float, metavar="REL",
                   help="fp16/bf16: keep the earliest layers fp32 until every checked output's max relative error "
                        "vs fp32 on the sample inputs is at most REL (e.g. 1e-2)")
    p.add_argument("--error-outputs", default="", metavar="NAMES",
                   help="comma-separated outputs --max-error applies to (default: every float output)")
    p.add_argument("--no-optimize", action="store_true", help="skip the graph passes")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="NHWC through conv chains (default: on for models with convolutions)")
    p.add_argument("--opt-level", type=int, choices=range(0, 6), default=3, metavar="0..5",
                   help="build effort: 0 = the ops' heuristics, no timing; 1-5 = time every layer's candidate "
                        "implementations at the profile's opt shape and keep the fastest, more runs per candidate "
                        "at higher levels (default 3)")
    p.add_argument("--timing-cache", metavar="FILE",
                   help="tactic timings to reuse and add to (JSON, created if missing): a layer found in it for "
                        "this device and these library versions is not timed again")
    _add_calibration_args(p, cache_default="default: none, calibrate every build")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="--int8: leave the layers' biases as they are (by default each INT8 layer's bias absorbs "
                        "the mean shift its weights' rounding causes on the calibration data)")
    p.add_argument("--smooth", type=_alpha, metavar="ALPHA|auto",
                   help="--int8: SmoothQuant for the GEMMs' inputs: divide each input channel by "
                        "max|x|^ALPHA / max|w|^(1-ALPHA) and multiply the weight rows by it, so activation outliers "
                        "move into the per-channel weights (transformers); auto: the ALPHA of 0.5-0.9 (or none) "
                        "whose trial engine is closest to fp32 on the tuning data (--accuracy-data, default --calib). "
                        "Default off")
    g = p.add_argument_group("INT8 accuracy budget")
    g.add_argument("--max-accuracy-drop", type=float, metavar="X",
                   help="--int8: keep the layers float whose INT8 costs the most accuracy per MAC until the metric's "
                        "drop vs fp32 on the tuning data is at most X (e.g. 0.01)")
    g.add_argument("--metric", default="top1-agreement", metavar="NAME",
                   help="the drop --max-accuracy-drop bounds: top1-agreement (default), kl, cosine, or "
                        "module:function(ours, reference) -> drop")
    g.add_argument("--accuracy-data", metavar="DATA",
                   help="the tuning data (same forms as --calib; default: the calibration data)")

    p = sub.add_parser("run", help="run a model through greenrt",
                       epilog=arg.example("greenrt run model.engine --inputs in.npz --save-outputs out.npz",
                                          "greenrt run model.onnx --shapes image:1x3x224x224"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(p)
    p.add_argument("--save-outputs", help="write outputs to this .npz file")

    p = sub.add_parser("compare", help="compare greenrt with onnxruntime, per output or layer",
                       description="run greenrt and onnxruntime on the same inputs and compare outputs; over the "
                                   "tolerance, judge the error against the references' own spread",
                       epilog=arg.example("greenrt compare model.engine --inputs in.npz",
                                          "greenrt compare model.onnx --per-layer --precision fp16 --rtol 1e-2 "
                                          "--plot growth.png"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_model_args(p)
    p.add_argument("--reference", help="ONNX model the references run (default: MODEL, or for an engine the model "
                                       "path recorded in it)")
    p.add_argument("--rtol", type=float, default=None,
                   help="relative tolerance, times max|reference| (default by the engine's precision: 1e-4 fp32 and "
                        "ONNX files, 1e-3 tf32, 1e-2 fp16, 8e-2 bf16)")
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default 1e-5)")
    p.add_argument("--spread-multiple", type=_positive_float, default=2.0, metavar="K",
                   help="an output over the tolerance still passes ('within reference spread', exit 0) when its error "
                        "is at most K times the largest difference among the references: onnxruntime at its four "
                        "graph optimization levels and onnx.reference (default 2)")
    p.add_argument("--no-spread", action="store_true",
                   help="judge by the fixed tolerance alone: do not run the references again to measure their spread")
    p.add_argument("--reference-timeout", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="time limit for onnx.reference when measuring the spread; past it the spread is measured "
                        "among onnxruntime's levels alone (default 5)")
    per = p.add_argument_group("per layer (--per-layer)")
    per.add_argument("--per-layer", action="store_true",
                     help="compare every fused layer (plan step output) with the ONNX tensor of the same name: error "
                          "per layer in graph order, the first layer over the tolerance and the first MISMATCH")
    arg.add_precision(per, default=None, meaning="an ONNX MODEL is built into a temporary engine first: its precision")
    per.add_argument("--layer-precision", default="", help="that build's per-layer precision (as in build)")
    per.add_argument("--no-optimize", action="store_true", help="that build skips the graph passes")
    per.add_argument("--load-inputs", metavar="NPZ", help="inputs from this .npz (as --inputs)")
    per.add_argument("--save-inputs", metavar="NPZ", help="write the inputs used to this .npz")
    per.add_argument("--data-loader", metavar="SCRIPT",
                     help="a Python file defining load_data() that yields feed dicts; its first is used. The file "
                          "is EXECUTED: run only scripts you trust")
    per.add_argument("--plot", metavar="PNG", help="plot max rel error per layer (log scale) to this file "
                                                    "(needs matplotlib)")
    per.add_argument("--json", metavar="OUT", help="write the per-layer records to this JSON file")

    p = sub.add_parser("bench", help="time greenrt against its baselines, with energy",
                       description="time greenrt against onnxruntime / torch baselines in one process: latency, "
                                   "throughput, energy per inference, gCO2e",
                       epilog=arg.example("greenrt bench model.engine --batch 1,256 --vs onnxruntime,eager,"
                                          "torch-compile --torch-module mypkg.models:resnet50 --json r.json "
                                          "--plot r.png"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    arg.add_model(p)
    arg.add_device(p)
    p.add_argument("--batch", default="", help="comma-separated batch sizes; the batch is dim 0 of every input "
                                               "(default 1,256 on cuda, 1,8 on cpu)")
    arg.add_shapes(p, meaning="sizes the other dynamic dims (dim 0 is replaced by --batch)")
    p.add_argument("--duration", type=_positive_float, default=None, metavar="S",
                   help="steady throughput window in seconds (default 5 on cuda, 3 on cpu); with an energy counter "
                        "at least 1 s and 20 calls; with --rounds also about the time the slowest runner spends in "
                        "the latency rounds")
    p.add_argument("--warmup", type=int, default=10, metavar="N",
                   help="warm-up calls per runner and batch (default 10)")
    p.add_argument("--vs", default=None, help="baselines, comma-separated: onnxruntime (on cpu: its default "
                                              "session and its best), openvino, openvino-bf16 (pip install "
                                              "'greenrt[openvino]'), eager, eager-cudagraph, torch-compile (default: "
                                              "onnxruntime and the torch ones with --torch-module, else onnxruntime)")
    p.add_argument("--rounds", type=int, default=None, metavar="N",
                   help="latency in N interleaved rounds, every runner a block of calls each round, the order rotated "
                        "(default 10 on cpu, 0 on cuda; 0: each runner timed on its own, in turn); the rounds take "
                        "about --duration per runner")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="CPU threads for every runner: torch (restored after), onnxruntime, OpenVINO (default: "
                        "torch's, one per physical core)")
    p.add_argument("--torch-module", metavar="PKG.MOD:FACTORY",
                   help="a callable returning an nn.Module that takes the model's inputs in order (torch baselines)")
    p.add_argument("--reference", help="ONNX file for onnxruntime (default: MODEL, or the engine's recorded model)")
    p.add_argument("--grid-intensity", type=_positive_float, default=None, metavar="G",
                   help="grid carbon intensity in gCO2e/kWh for gCO2e per 1,000 inferences (default 480: approximate "
                        "world average for 2023, Ember Global Electricity Review 2024)")
    p.add_argument("--json", metavar="OUT", help="write greenrt-results/1 to this file")
    p.add_argument("--plot", metavar="OUT.png", help="write bar charts (latency, throughput, energy)")
    arg.add_seed(p, "seed of the first random input set (default 0)")
    arg.add_allow_mismatch(p)

    p = sub.add_parser("calibrate", help="INT8 calibration: per-tensor ranges of a model on representative data",
                       description="run the optimized fp32 graph on calibration data, one streaming histogram per "
                                   "tensor, and write each tensor's INT8 clipping threshold to a calibration cache "
                                   "(JSON) that later builds reuse; a cache made for another model, calibrator or "
                                   "settings is refused, never used stale",
                       epilog=arg.example("greenrt calibrate model.onnx --calib calib.npz",
                                          "greenrt calibrate model.onnx --calib photos/ --calib-method percentile "
                                          "--percentile 99.9 --calib-cache model.calib.json"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an .onnx file (with --check also an INT8 engine built with --calib-cache: "
                                   "its model and cache are checked)")
    _add_calibration_args(p, cache_default="MODEL.calib.json")
    p.add_argument("--check", metavar="DATA",
                   help="drift check: run DATA (same forms as --calib) against the calibration cache and name the "
                        "tensors whose values now clip far more often or use under half of their calibrated range; "
                        "exit 1 when it advises recalibrating")

    p = sub.add_parser("demo", help="the main job: EfficientNet-Lite0 on real photos",
                       description="the main job: EfficientNet-Lite0 (ImageNet weights) on real photos, greenrt vs "
                                   "onnxruntime (and OpenVINO where installed): answers, error, then batch-1 latency "
                                   "in interleaved rounds, throughput and energy through greenrt bench",
                       epilog=arg.example("greenrt demo", "greenrt demo --device cuda --precision fp16"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    arg.add_device(p, default="cpu", meaning="where the engine runs (default cpu)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="greenrt bench's steady window per runner in seconds (default: bench's, 3 on the CPU)")
    p.add_argument("--opt-level", type=int, default=None, choices=range(6), metavar="0-5",
                   help="the engine's build effort (default 4 on the CPU: Inductor's compiled graph is a candidate, "
                        "kept where it times faster; the build's default on a GPU)")
    arg.add_precision(p, choices=("fp32", "fp16", "bf16"))

    p = sub.add_parser("inspect", help="what greenrt supports, or what a model or engine holds",
                       epilog=arg.example("greenrt inspect ops", "greenrt inspect model model.engine --export "
                                          "optimized.onnx"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    isub = p.add_subparsers(dest="what", parser_class=_Parser, required=True)
    ops = isub.add_parser("ops", help="list supported ops per domain and opset",
                          epilog=arg.example("greenrt inspect ops --opset 17"),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    ops.add_argument("--opset", type=int, help="only what runs at this ai.onnx opset")
    m = isub.add_parser("model", help="inputs, outputs, opsets and op counts of a model (or an engine)",
                        epilog=arg.example("greenrt inspect model model.engine",
                                           "greenrt inspect model model.engine --export optimized.onnx",
                                           "greenrt inspect model model.engine --json model.json",
                                           "greenrt inspect model model.engine --profile --device cuda --plot "
                                           "layers.png"),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("model")
    m.add_argument("--export", metavar="OUT.onnx",
                   help="write the optimized graph as an ONNX file (greenrt fused ops defined by model-local ONNX "
                        "functions, so Netron and onnxruntime open it); an ONNX MODEL is built with greenrt build's "
                        "defaults for cpu first")
    m.add_argument("--json", metavar="OUT.json",
                   help="an engine's description as JSON: versions, device, config, profiles, the build report "
                        "(passes, precision, tactics with every candidate's time, memory, accuracy) and every layer")
    m.add_argument("--profile", action="store_true",
                   help="time each layer (median of --runs runs) and list the slowest with their share of the total")
    arg.add_device(m, meaning="where --profile runs (default cpu)")
    arg.add_shapes(m, meaning="for --profile (default: the first profile's opt shapes)")
    arg.add_seed(m, "seed for --profile's random inputs (default 0)")
    m.add_argument("--runs", type=int, default=10, help="timed runs for --profile (default 10)")
    m.add_argument("--top", type=int, default=15, help="how many of the slowest layers --profile lists (default 15)")
    m.add_argument("--plot", metavar="LAYERS.png", help="with --profile: bar plot of the --top slowest layers")

    p = sub.add_parser("conformance", help="run the ONNX node conformance cases",
                       description="run the ONNX node conformance cases of the installed onnx through greenrt",
                       epilog=arg.example("greenrt conformance --check", "greenrt conformance -k '*attention*' "
                                          "--device cuda --show all"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", "--select", action="append", help="glob on case name or op (repeatable)")
    arg.add_device(p, default="cpu", meaning="where the cases run (default cpu)")
    p.add_argument("--show", choices=["failed", "all", "none"], default="failed", help="which cases to list")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a case fails differently from the expected-failures list (not listed, another "
                        "category, an error above its bound, or it passes now)")
    p.add_argument("--write-expected", action="store_true",
                   help="update the entries of the cases run (with -k: only those); entries that still fail the "
                        "same way keep their reason and bound")
    p.add_argument("--expected-file", metavar="PATH",
                   help="the expected-failures list (default: the one committed with greenrt)")
    p.add_argument("--json", help="write per-case results to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return the code instead of exiting
        return int(exc.code or 0)
    if args.version:
        from .commands import print_versions

        return print_versions()
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    from . import commands
    from ..errors import GreenrtError

    args.argv = list(sys.argv[1:] if argv is None else argv)  # the exact command line, for results metadata
    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return handler(args)
    except GreenrtError as exc:
        print(f"greenrt: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("greenrt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
