"""Torch sources of the benchmark models, as `greenrt bench --torch-module bench.suite_models:NAME` factories.

Each factory is the very module the real-model corpus exports (greenrt.zoo: random weights, seed 0), so the ONNX
file `greenrt bench` runs and the module it times as its torch baselines hold the same weights, and the
baselines' accuracy against onnxruntime means something.

    python bench/suite_models.py resnet50 resnet50.onnx          # export one, input 'image', dynamic batch
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from greenrt.zoo import text, vision  # noqa: E402


def resnet50():
    return vision.torchvision_module("resnet50")


def mobilenet_v3_large():
    return vision.torchvision_module("mobilenet_v3_large")


def efficientnet_b0():
    return vision.torchvision_module("efficientnet_b0")


def vit_b_16():
    return vision.torchvision_module("vit_b_16")


def bert_base():
    return text.bert_base_module()


EXPORTS = {name: (lambda path, n=name: vision.export_torchvision(n, path=Path(path))) for name in vision.TORCHVISION_MODELS}
EXPORTS["bert_base"] = lambda path: text.export_bert_base(path=Path(path))


if __name__ == "__main__":
    print(EXPORTS[sys.argv[1]](sys.argv[2]))
