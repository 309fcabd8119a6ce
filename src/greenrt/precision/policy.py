"""Which precision each node runs in: a default plus ordered wildcard overrides.

    config = PrecisionConfig("fp16", parse_layer_precision("encoder.*.softmax=fp32,Softmax=fp32,/layer1/*=fp16"))
    config.resolve("encoder.3.softmax", "Softmax")  -> ("fp32", "encoder.*.softmax=fp32")

A pattern (fnmatch wildcards: ``*``, ``?``, ``[seq]``) matches a node when it matches the node's name OR its op
type; when several rules match, the later one wins (so a CLI can append refinements).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from ..errors import GreenrtError

PRECISIONS = ("fp32", "fp16", "bf16", "tf32")
_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "f32": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
    "tf32": "tf32",
    "int8": "int8",  # a layer rule only (--layer-precision in an --int8 build): the engine's default is a float
}
LAYER_PRECISIONS = PRECISIONS + ("int8",)


def normalize_precision(name: str, what: str = "precision", allowed: tuple[str, ...] = PRECISIONS) -> str:
    """'FP16', 'float16', 'half' -> 'fp16'; GreenrtError naming the value otherwise."""
    key = str(name).strip().lower()
    if key not in _ALIASES or _ALIASES[key] not in allowed:
        raise GreenrtError(f"{what} {name!r} is not one of {', '.join(allowed)}")
    return _ALIASES[key]


@dataclass
class PrecisionConfig:
    """``default`` for every float node, ``overrides`` as ordered (pattern, precision) rules (later wins).

    ``auto_fallback``: with sample inputs, fp16 nodes whose activations leave ``fallback_threshold`` x 65504 are
    kept fp32. ``tf32`` stores fp32 and only allows TF32 matmul/conv math on GPUs (the runtime's switch).
    ``keep_fp32``: exact node names kept fp32 with the reason to report (the accuracy search's result); an
    explicit override still wins.
    """

    default: str = "fp32"
    overrides: list[tuple[str, str]] = field(default_factory=list)
    auto_fallback: bool = True
    fallback_threshold: float = 0.5
    keep_fp32: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.default = normalize_precision(self.default, "default precision")
        self.overrides = [(str(p), normalize_precision(v, f"precision for {p!r}")) for p, v in self.overrides]
        if not 0.0 < float(self.fallback_threshold) <= 1.0:
            raise GreenrtError(f"fallback_threshold must be in (0, 1], got {self.fallback_threshold}")

    def resolve(self, node_name: str, op_type: str) -> tuple[str, str | None]:
        """(precision, the winning rule as 'pattern=precision' or None when the default applies)."""
        precision, rule = self.default, None
        for pattern, value in self.overrides:
            if matches(pattern, node_name, op_type):
                precision, rule = value, f"{pattern}={value}"
        return precision, rule


def matches(pattern: str, node_name: str, op_type: str) -> bool:
    """fnmatch against the node name or the op type (case-sensitive: ONNX names are)."""
    return bool((node_name and fnmatch.fnmatchcase(node_name, pattern)) or fnmatch.fnmatchcase(op_type, pattern))


def parse_layer_precision(spec: str) -> list[tuple[str, str]]:
    """'encoder.*.softmax=fp32,Softmax=fp32,/layer1/*=fp16' -> [(pattern, precision), ...] in order.

    Items are separated by commas (or semicolons); blank items are skipped. The last '=' splits pattern from
    precision, so a pattern may itself contain '='. GreenrtError names the malformed item.
    """
    if spec is None:
        return []
    rules: list[tuple[str, str]] = []
    for raw in str(spec).replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        if "=" not in item:
            raise GreenrtError(
                f"layer precision item {item!r} has no '=': write PATTERN=PRECISION, e.g. 'Softmax=fp32' "
                f"(precisions: {', '.join(PRECISIONS)})"
            )
        pattern, _, value = item.rpartition("=")
        pattern, value = pattern.strip(), value.strip()
        if not pattern:
            raise GreenrtError(f"layer precision item {item!r} has an empty pattern: write PATTERN=PRECISION")
        if not value:
            raise GreenrtError(f"layer precision item {item!r} has no precision after '=' "
                               f"(one of {', '.join(PRECISIONS)})")
        try:
            precision = normalize_precision(value, allowed=LAYER_PRECISIONS)
        except GreenrtError:
            raise GreenrtError(f"layer precision item {item!r}: {value!r} is not one of "
                               f"{', '.join(LAYER_PRECISIONS)}") from None
        rules.append((pattern, precision))
    return rules
