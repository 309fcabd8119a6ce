"""One place that calls torch.onnx.export, for both exporters (dynamo=True writes weights to .onnx.data)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path


def export_onnx(model, args, path: Path, input_names, output_names, dynamic_axes, dynamo: bool,
                opset: int | None = None) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # nn.MultiheadAttention's inference fast path (aten::_native_multi_head_attention) has no ONNX export
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        return _export(model, args, path, tmp_name(path), input_names, output_names, dynamic_axes, dynamo, opset)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def tmp_name(path: Path) -> Path:
    return path.with_suffix(".tmp.onnx")


def _export(model, args, path: Path, tmp: Path, input_names, output_names, dynamic_axes, dynamo, opset) -> Path:
    import torch

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            dynamic_shapes = _dynamic_shapes(args, input_names, dynamic_axes)
            program = torch.onnx.export(model, args, input_names=input_names, output_names=output_names,
                                        dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=opset or 18,
                                        verbose=False)
            program.save(str(tmp), external_data=True)
        else:
            torch.onnx.export(model, args, str(tmp), input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, dynamo=False, opset_version=opset or 17)
    data = tmp.with_name(tmp.name + ".data")
    if data.exists():
        # external data keeps the name it was written with; rename the model only
        import onnx

        proto = onnx.load(str(tmp))
        onnx.save(proto, str(path), save_as_external_data=True, location=path.name + ".data",
                  size_threshold=1024)
        tmp.unlink()
        data.unlink()
    else:
        tmp.replace(path)
    return path


def _dynamic_shapes(args, input_names, dynamic_axes):
    from torch.export import Dim

    dims: dict[str, object] = {}
    shapes = []
    for name, _ in zip(input_names, args):
        axes = dynamic_axes.get(name, {})
        shapes.append({axis: dims.setdefault(label, Dim(label, min=1, max=4096)) for axis, label in axes.items()}
                      or None)
    return tuple(shapes)
