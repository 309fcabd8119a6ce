"""One command line: shared options mean the same in every command, every command's help ends with an example,
and `greenrt --help` lists each command on one line."""

import argparse

import pytest

from greenrt.build.inputs import parse_shapes
from greenrt.errors import InvalidInputError
from greenrt.tools.cli import build_parser, main


def _commands(parser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            out |= {f"{name} {n}": q for n, q in nested[0].choices.items()}
        else:
            out[name] = p
    return out


def _option(p, flag):
    return next((a for a in p._actions if flag in a.option_strings), None)


def test_every_command_help_ends_with_an_example():
    for name, p in _commands(build_parser()).items():
        assert (p.epilog or "").startswith("example:\n  greenrt "), name


def test_top_level_help_lists_every_command_on_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("build", "run", "compare", "bench", "demo", "inspect", "conformance"):
        line = next(x for x in out.splitlines() if x.strip().startswith(name + " "))
        assert len(line.split(name, 1)[1].strip()) > 10, line  # a description on the command's own line


@pytest.mark.parametrize("flag", ["--device", "--shapes", "--seed", "--inputs", "--allow-mismatch"])
def test_shared_options_mean_the_same_everywhere(flag):
    """Defined by one function (tools/arguments.py): same choices, and the help starts the same way."""
    found = {name: _option(p, flag) for name, p in _commands(build_parser()).items()}
    found = {k: v for k, v in found.items() if v is not None}
    assert len(found) >= 2, found
    choices = {tuple(a.choices or ()) for a in found.values()}
    assert len(choices) == 1, choices
    if flag == "--shapes":
        assert all("NAME:DIMS or NAME:MIN/OPT/MAX" in a.help for a in found.values())


def test_build_precision_flag_and_alias_agree():
    parser = build_parser()
    a = parser.parse_args(["build", "m.onnx", "--precision", "fp16"])
    b = parser.parse_args(["build", "m.onnx", "--fp16"])
    assert a.precision == b.precision == "fp16"
    with pytest.raises(SystemExit):
        parser.parse_args(["build", "m.onnx", "--fp16", "--precision", "bf16"])


def test_shapes_of_a_range_run_at_opt():
    assert parse_shapes("x:1x3x8x8/4x3x8x8/16x3x8x8,m:2x5") == {"x": [4, 3, 8, 8], "m": [2, 5]}
    with pytest.raises(InvalidInputError, match="NAME:MIN/OPT/MAX"):
        parse_shapes("x:1x3/4x3")


def test_run_takes_build_profile_syntax(mlp_path, capsys):
    assert main(["run", str(mlp_path), "--shapes", "x:1x8/3x8/9x8"]) == 0
    assert "probs: float32 [3, 4]" in capsys.readouterr().out
