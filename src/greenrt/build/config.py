"""What a build is asked to do: BuildConfig, and the command line that reproduces it."""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass, field

from ..errors import GreenrtError
from ..plan.profiles import Profile
from .calibration.histogram import DEFAULT_METHOD as DEFAULT_CALIB_METHOD
from .calibration.histogram import DEFAULT_PERCENTILE

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
OPT_LEVELS = range(0, 6)
DEFAULT_OPT_LEVEL = 3


@dataclass
class BuildConfig:
    device: str = "cpu"
    precision: str = "fp32"
    layer_precision: str = ""
    profiles: list[Profile] = field(default_factory=list)
    workspace: int | None = None  # bytes of activation memory allowed at the profiles' max shapes
    channels_last: bool | None = None  # None: on for engines with 4-D convolutions (CUDA and CPU)
    optimize: bool = True
    seed: int = 0
    outputs: list[str] = field(default_factory=list)  # intermediate tensors marked as extra engine outputs
    max_error: float | None = None  # fp16/bf16: keep layers fp32 until this max relative error holds
    error_outputs: list[str] = field(default_factory=list)  # outputs max_error applies to (default: all float)
    inputs: list[str] = field(default_factory=list)  # .npz sample input files (CLI); or samples= in the API
    opt_level: int = DEFAULT_OPT_LEVEL  # 0: the ops' heuristics, no timing; 1-5: time each layer's tactics, more runs
    timing_cache: str | None = None  # JSON file of tactic timings: read (a hit times nothing) and updated
    # INT8 (precision/int8.py): convs and GEMMs in INT8 from a calibration, the rest in ``precision``
    int8: bool = False
    fp8: bool = False  # the same pipeline with float8 e4m3 layers instead of INT8 (Hopper); implies int8
    calib: str | None = None  # calibration data: .npz file(s), an image folder or module:function
    calib_method: str = ""  # "": percentile for INT8, minmax for FP8 (the accuracy suite's best for each)
    percentile: float = DEFAULT_PERCENTILE
    calib_cache: str | None = None  # calibration cache to reuse (when made for this model and calibrator) or write
    calib_batch: int = 8
    calib_preprocess: str | None = None  # image folders: the preprocessing spec (calibration/data.py ImageSpec)
    bias_correction: bool = True  # INT8 biases absorb their weights' rounding shift (precision/int8.py)
    smooth: float | str | None = None  # SmoothQuant alpha for the GEMMs' inputs (precision/int8.py), "auto": the
    # alpha (or none) whose trial engine is closest to fp32 on the tuning data; None: no smoothing
    max_accuracy_drop: float | None = None  # INT8: keep layers float until the metric's drop is within this
    metric: str = "top1-agreement"  # top1-agreement | kl | cosine | module:function (build/int8_search.py)
    accuracy_data: str | None = None  # the tuning data the search measures on (default: the calibration data)

    def __post_init__(self):
        if self.fp8:  # the quantized build's pipeline (calibration, search, smoothing) with another format
            self.int8 = True
        if not self.calib_method:
            self.calib_method = default_calib_method(self.fp8)

    @property
    def quant_format(self) -> str:
        return "fp8" if self.fp8 else "int8"

    def to_json(self) -> dict:
        d = asdict(self)
        d["profiles"] = [p.to_json() for p in self.profiles]
        return d

    def validate(self) -> None:
        """GreenrtError for settings that contradict each other (before any work is done)."""
        if self.precision not in PRECISIONS:
            raise GreenrtError(f"precision {self.precision!r} is not one of {PRECISIONS}")
        reduced = self.precision in ("fp16", "bf16")
        if self.int8 and not (self.calib or self.calib_cache):
            raise GreenrtError("an INT8 build needs calibration: --calib DATA (.npz files, a folder of images or "
                               "module:function) or --calib-cache FILE made for this model")
        if not self.int8 and (self.calib or self.calib_cache):
            raise GreenrtError("--calib / --calib-cache calibrate an INT8 build: add --int8 (or drop them)")
        if self.int8 and self.max_error is not None:
            raise GreenrtError("max_error keeps fp16/bf16 layers fp32 in a float build; in an INT8 build choose the "
                               "layers to keep float with --layer-precision (e.g. 'head/*=fp16')")
        if (self.max_accuracy_drop is not None or self.accuracy_data) and not self.int8:
            raise GreenrtError("--max-accuracy-drop / --accuracy-data choose which layers of an INT8 build stay float: "
                               "add --int8 --calib DATA (for fp16/bf16 builds the budget is --max-error)")
        if self.smooth is not None and not (self.int8 and (self.smooth == "auto" or (
                isinstance(self.smooth, (int, float)) and 0 <= self.smooth <= 1))):
            raise GreenrtError(f"--smooth {self.smooth}: SmoothQuant's alpha for an INT8 build's GEMM inputs is in "
                               "[0, 1] (0.5 moves half of an input's outliers into the weights) or auto (the one "
                               "closest to fp32 on the tuning data), and needs --int8")
        if self.max_accuracy_drop is not None and not self.max_accuracy_drop >= 0:
            raise GreenrtError(f"--max-accuracy-drop must be >= 0 (e.g. 0.01 for 1% top-1), got "
                               f"{self.max_accuracy_drop}")
        if self.max_error is not None and not reduced:
            raise GreenrtError(f"max_error searches which layers to keep fp32 in an fp16 or bf16 build; this build is "
                               f"{self.precision}: build in fp16 or bf16, or drop max_error")
        if self.layer_precision and not (reduced or self.int8):
            raise GreenrtError(f"layer_precision {self.layer_precision!r} sets per-layer precision inside an fp16, "
                               f"bf16 or INT8 build; this build is {self.precision}, where every layer runs {self.precision}: "
                               "build in fp16, bf16 or INT8 (--int8), or drop layer_precision")
        if self.error_outputs and self.max_error is None:
            raise GreenrtError("error_outputs names the outputs max_error applies to; set max_error too")
        if self.opt_level not in OPT_LEVELS:
            raise GreenrtError(f"opt_level {self.opt_level}: expected 0 (no timing, the ops' heuristics) to 5 (the "
                               f"widest search); default {DEFAULT_OPT_LEVEL}")
        if self.max_error is not None and not self.max_error > 0:
            raise GreenrtError(f"max_error must be a positive relative error (e.g. 1e-2), got {self.max_error}")


def default_calib_method(fp8: bool) -> str:
    """percentile for INT8; minmax for FP8, whose float8 keeps its relative precision at every magnitude, so that
    clipping outliers only loses (bench/results/accuracy_cpu.json: min-max beat percentile on all four models)."""
    return "minmax" if fp8 else DEFAULT_CALIB_METHOD


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5GiB', '1000000' -> bytes."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise GreenrtError(f"--workspace: cannot parse {text!r}; write e.g. 4G, 512M or a number of bytes")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def build_command(model_path, config: BuildConfig) -> str:
    """The `greenrt build` command line that builds the same engine from ``model_path`` (every setting that changes
    the engine; the output path is left out: the same model, config and timing cache give a byte-identical engine
    wherever it is written; without a cache, --opt-level >= 1 keeps the tactics timed fastest on this run)."""
    parts = ["greenrt", "build", str(model_path), "--device", config.device]
    if config.precision != "fp32":
        parts.append(f"--{config.precision}")
    if config.int8:
        parts.append("--fp8" if config.fp8 else "--int8")
        if config.calib:
            parts += ["--calib", str(config.calib)]
        if config.calib_method != default_calib_method(config.fp8):
            parts += ["--calib-method", config.calib_method]
        if config.calib_method == "percentile" and config.percentile != DEFAULT_PERCENTILE:
            parts += ["--percentile", f"{config.percentile:g}"]
        if config.calib_cache:
            parts += ["--calib-cache", str(config.calib_cache)]
        if config.calib_batch != 8:
            parts += ["--calib-batch", str(config.calib_batch)]
        if config.calib_preprocess:
            parts += ["--calib-preprocess", config.calib_preprocess]
        if not config.bias_correction:
            parts.append("--no-bias-correction")
        if config.smooth is not None:
            parts += ["--smooth", str(config.smooth) if config.smooth == "auto" else f"{config.smooth:g}"]
        if config.max_accuracy_drop is not None:
            parts += ["--max-accuracy-drop", f"{config.max_accuracy_drop:g}", "--metric", config.metric]
        if config.accuracy_data:
            parts += ["--accuracy-data", str(config.accuracy_data)]
    for p in config.profiles:
        spec = ",".join(f"{n}:{'x'.join(map(str, a))}/{'x'.join(map(str, b))}/{'x'.join(map(str, c))}"
                        for n, (a, b, c) in p.shapes.items())
        parts += ["--shapes", spec]
    if config.layer_precision:
        parts += ["--layer-precision", config.layer_precision]
    if config.workspace:
        parts += ["--workspace", str(config.workspace)]
    if config.outputs:
        parts += ["--outputs", ",".join(config.outputs)]
    if config.max_error is not None:
        parts += ["--max-error", f"{config.max_error:g}"]
    if config.error_outputs:
        parts += ["--error-outputs", ",".join(config.error_outputs)]
    for path in config.inputs:
        parts += ["--inputs", str(path)]
    if not config.optimize:
        parts.append("--no-optimize")
    if config.channels_last is not None:
        parts += ["--channels-last", "on" if config.channels_last else "off"]
    if config.opt_level != DEFAULT_OPT_LEVEL:
        parts += ["--opt-level", str(config.opt_level)]
    if config.timing_cache:
        parts += ["--timing-cache", str(config.timing_cache)]
    return " ".join(shlex.quote(x) for x in parts)
