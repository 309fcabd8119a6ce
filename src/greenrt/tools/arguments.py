"""Argument groups shared by the commands, as Polygraphy builds its tools: `--device`, `--shapes`, `--inputs`,
`--seed`, `--precision` and `--allow-mismatch` are defined once here, so they mean the same thing in every command
that takes them.

`--shapes` everywhere: sizes per input, `NAME:DIMS` or a range `NAME:MIN/OPT/MAX`, comma-separated. `build` makes
each `--shapes` an optimization profile (repeat it for several); a command that runs one shape (run, compare,
bench, inspect --profile) uses the given shape, or OPT of a range.
"""

from __future__ import annotations

import argparse

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
SHAPES_SYNTAX = "NAME:DIMS or NAME:MIN/OPT/MAX, comma-separated, e.g. image:1x3x224x224 or image:1x3x224x224/8x3x224x224/32x3x224x224"


def add_model(p: argparse.ArgumentParser, what: str = "an .onnx file or a greenrt engine") -> None:
    p.add_argument("model", help=f"path to {what}")


def add_device(p, default: str | None = None, meaning: str = "where greenrt runs (default: the engine's device, "
                                                             "cpu for ONNX)") -> None:
    p.add_argument("--device", default=default, choices=DEVICES, help=meaning)


def add_shapes(p, profiles: bool = False, meaning: str = "") -> None:
    """``profiles``: repeatable, each one optimization profile (build); else one set of shapes to run."""
    if profiles:
        p.add_argument("--shapes", action="append", default=[], metavar="SHAPES",
                       help=f"one optimization profile: {SHAPES_SYNTAX} (a single shape: min = opt = max); repeat for "
                            "several profiles" + (f"; {meaning}" if meaning else ""))
    else:
        p.add_argument("--shapes", default="", metavar="SHAPES",
                       help=f"input shapes: {SHAPES_SYNTAX} (a range runs at OPT)" + (f"; {meaning}" if meaning
                                                                                        else ""))


def add_inputs(p, repeatable: bool = False, meaning: str = "(default: random inputs, --seed)") -> None:
    if repeatable:
        p.add_argument("--inputs", action="append", default=[], metavar="NPZ",
                       help=f".npz file of inputs, one array per model input; repeatable {meaning}")
    else:
        p.add_argument("--inputs", metavar="NPZ", help=f".npz file of inputs, one array per model input {meaning}")


def add_seed(p, meaning: str = "seed for random inputs (default 0)") -> None:
    p.add_argument("--seed", type=int, default=0, help=meaning)


def add_precision(p, default: str | None = "fp32", choices=PRECISIONS, meaning: str = "engine precision") -> None:
    p.add_argument("--precision", default=default, choices=choices,
                   help=f"{meaning} (default {default or 'fp32'})")


def add_allow_mismatch(p) -> None:
    p.add_argument("--allow-mismatch", action="store_true",
                   help="load an engine built for other versions or another device anyway (with a warning)")


def example(*lines: str) -> str:
    """A command's help epilog: the examples, one per line."""
    return "example:\n" + "\n".join(f"  {line}" for line in lines)
