"""Torch sources of the benchmark models, as `greenrt bench --torch-module bench.suite_models:NAME` factories.

Each factory builds the module with a fixed seed, so the ONNX file exported from it (``export``) and the module
`greenrt bench` times as its baseline hold the same weights, and the baselines' accuracy against onnxruntime means
something.

    python bench/suite_models.py resnet50 resnet50.onnx          # export, input 'image', dynamic batch
"""

from __future__ import annotations

import sys

import torch


def resnet50() -> torch.nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet50().eval()


FACTORIES = {"resnet50": (resnet50, (1, 3, 224, 224))}


def export(name: str, path: str) -> None:
    factory, shape = FACTORIES[name]
    x = torch.randn(shape)
    torch.onnx.export(factory(), (x,), path, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, opset_version=17, dynamo=False)


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2])
