"""Reduced precision (fp16 / bf16 / tf32) as a graph rewrite between the fusion passes and compile.

    from greenrt.precision import PrecisionConfig, parse_layer_precision, apply_precision
    config = PrecisionConfig("fp16", parse_layer_precision("Softmax=fp32,/head/*=fp32"))
    report = apply_precision(model, config, observe_ranges(model, [{"image": x}]))   # observe_ranges: greenrt.build
    print(report.summary())
"""

from .convert import NodePrecision, ObservedRanges, PrecisionReport, apply_precision
from .policy import PRECISIONS, PrecisionConfig, normalize_precision, parse_layer_precision

__all__ = [
    "PrecisionConfig",
    "parse_layer_precision",
    "apply_precision",
    "PrecisionReport",
    "NodePrecision",
    "ObservedRanges",
    "normalize_precision",
    "PRECISIONS",
]
