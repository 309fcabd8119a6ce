"""torchvision classifiers (random weights, fixed seed) and ultralytics YOLOv8n built from its yaml (no download)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from . import cache_dir
from .export import export_onnx

TORCHVISION_MODELS = ("resnet50", "mobilenet_v3_large", "efficientnet_b0", "vit_b_16")


def torchvision_module(name: str, init: str = "torchvision"):
    """The torchvision model the corpus exports (random weights, seed 0), in eval mode: the same weights every call,
    so a benchmark's torch baseline and the exported ONNX file hold the same model.

    ``init="he"``: conv and linear weights He-normal over their fan-in (biases zero), so activations keep their scale
    through the depth. With torchvision's own init (fan-out) MobileNetV3 and EfficientNet-B0 grow past fp16's range
    at random weights: torch fp16 then returns inf/NaN and an fp16 engine keeps those layers fp32, so a speed
    comparison would compare different arithmetic. The benchmark suite uses it where that happens."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    if init == "he":
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
    elif init != "torchvision":
        raise ValueError(f"init {init!r}: expected 'torchvision' or 'he'")
    head = getattr(getattr(model, "heads", None), "head", None)
    if head is not None and init == "torchvision":  # torchvision zero-initialises ViT's head: logits all zeros
        torch.nn.init.normal_(head.weight, std=0.02)
    return model


def export_torchvision(name: str, dynamo: bool = False, path: Path | None = None, init: str = "torchvision") -> Path:
    import torch

    suffix = "" if init == "torchvision" else f"_{init}"
    path = path or cache_dir() / f"{name}{suffix}{'_dynamo' if dynamo else ''}.onnx"
    if path.is_file():
        return path
    model = torchvision_module(name, init)
    example = torch.randn(2 if dynamo else 1, 3, 224, 224)  # torch.export specializes a dim of size 1
    axes = {"image": {0: "batch"}}
    return export_onnx(model, (example,), path, ["image"], ["logits"], axes, dynamo)


def export_yolov8n(path: Path | None = None) -> Path:
    """YOLOv8n from yolov8n.yaml with random weights, exported by ultralytics itself (opset 18, onnxslim).

    The convolutions get He-normal weights (seed 0): with ultralytics' default init the activations shrink ~0.6x per
    layer to |x| ~ 1e-10 at the head, so the network's contribution to the output vanishes (and an fp16 engine
    keeps those layers fp32 for underflow), which makes a weak test. The file name says which init it has."""
    path = path or cache_dir() / "yolov8n_he.onnx"
    if path.is_file():
        return path
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    workdir = cache_dir() / "yolo_export"
    workdir.mkdir(exist_ok=True)
    cwd = os.getcwd()
    try:
        os.chdir(workdir)
        with contextlib.redirect_stdout(io.StringIO()):
            model = YOLO("yolov8n.yaml")
            for m in model.model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            out = model.export(format="onnx", imgsz=640, dynamic=False, simplify=True, verbose=False)
    finally:
        os.chdir(cwd)
    (workdir / out).replace(path)  # ultralytics returns a path relative to the working dir
    return path
