"""The real-model correctness corpus: each entry exports (or locates) a model and makes real or realistic inputs.

``heavy`` entries are too slow for CI's 2 CPU cores (large exports, dynamo exports); `pytest -m heavy` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class CorpusModel:
    name: str
    export: Callable[[], object]  # -> path of the .onnx file
    inputs: Callable[[], list[dict[str, np.ndarray]]]  # one or more feeds (dynamic shapes vary across them)
    heavy: bool = False
    # fp16 engines of this model are built with the accuracy search (BuildConfig.max_error) at this target,
    # searched on ``inputs()``; ``holdout()`` feeds are only used to check the result
    fp16_max_error: float | None = None
    holdout: Callable[[], list[dict[str, np.ndarray]]] | None = None
    # outputs whose parts live on different scales, split so each part is checked against its own magnitude:
    # output name -> (part name -> (index into the output, the part's own relative tolerance or None))
    parts: dict[str, dict[str, tuple[tuple, float | None]]] | None = None

    def pieces(self, output: str, value: np.ndarray, rtol: float) -> dict[str, tuple[np.ndarray, float]]:
        """``value`` as the pieces to compare, each with its tolerance: itself at ``rtol``, or its parts
        (``output[part]``) when declared, each at the larger of ``rtol`` and the part's own."""
        split = (self.parts or {}).get(output)
        if not split:
            return {output: (value, rtol)}
        return {f"{output}[{part}]": (value[index], max(rtol, own or 0.0)) for part, (index, own) in split.items()}


# YOLOv8's output0 is [batch, 4 + 80, anchors]: box coordinates in pixels (up to ~640) and class scores (sigmoid,
# here all under 2e-4). One tolerance relative to the largest box coordinate lets any score row pass, zeros too.
# The scores get their own: onnxruntime disagrees with itself by 9.5e-4 of the largest score between
# ORT_DISABLE_ALL and ORT_ENABLE_ALL (logits near -11 through a deep He-initialised network amplify fp32 rounding);
# greenrt is 7.9e-4 from ORT_ENABLE_ALL. 2e-3 is about twice onnxruntime's own spread.
YOLO_PARTS = {"output0": {"boxes": ((slice(None), slice(0, 4)), None),
                          "scores": ((slice(None), slice(4, None)), 2e-3)}}


def _photo_batch(size: int = 224, batch: int = 2) -> list[dict[str, np.ndarray]]:
    from . import efficientnet_lite as e

    photos = list(e.photos().values())[:batch]
    x = np.concatenate([e.preprocess(p) for p in photos])[:, :, :size, :size]
    return [{"image": np.ascontiguousarray(x)}, {"image": np.ascontiguousarray(x[:1])}]


def _random_text_feeds() -> list[dict[str, np.ndarray]]:
    """Token ids for the random-weight BERT: two shapes (dynamic batch and sequence), padding in the mask."""
    rng = np.random.default_rng(0)
    feeds = []
    for batch, seq in ((2, 16), (3, 40)):
        mask = np.ones((batch, seq), np.int64)
        mask[-1, seq // 2:] = 0
        feeds.append({"input_ids": rng.integers(0, 30522, (batch, seq)).astype(np.int64), "attention_mask": mask,
                      "token_type_ids": np.zeros((batch, seq), np.int64)})
    return feeds


def _text_feeds() -> list[dict[str, np.ndarray]]:
    from .text import tokenize

    short = tokenize(["greenrt runs ONNX models on torch.", "Energy per inference matters."])
    long = tokenize(["A longer sentence changes the sequence length, which the dynamic axes must follow "
                     "through every reshape and attention mask in the encoder."])
    return [short, long]


def _ocr_image(height: int, width: int, imagenet_norm: bool = False) -> np.ndarray:
    """skimage's photo of printed text resized to HxW as 1x3xHxW, normalised as PP-OCR does: the detector with
    ImageNet mean/std, the recognizer and classifier with (x/255 - 0.5) / 0.5."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    img = torch.from_numpy(data.text().astype(np.float32))[None, None].repeat(1, 3, 1, 1)
    img = F.interpolate(img, size=(height, width), mode="bilinear", align_corners=False) / 255.0
    if imagenet_norm:
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return ((img - mean) / std).numpy().astype(np.float32)
    return ((img - 0.5) / 0.5).numpy().astype(np.float32)


def _rendered_text(height: int, width: int, imagenet_norm: bool = True) -> np.ndarray:
    """Black text drawn on white with Pillow's built-in font, 1x3xHxW, normalised like ``_ocr_image``: a text image
    unlike skimage's photo, for held-out checks. A page of lines of several sizes, or one line when height <= 64."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if height <= 64:
        draw.text((6, height // 8), "Invoice 20261124: 42.50 EUR", fill=(20, 20, 20),
                  font=ImageFont.load_default(size=int(height * 0.6)))
    else:
        lines = ["greenrt 0.1: ONNX in, one engine out", "fp16 logits within 1e-2 of fp32",
                 "Invoice #20261124 total 42.50", "THE QUICK BROWN FOX", "energy per inference: 25.1 mJ"]
        y = 12
        for i, text in enumerate(lines):
            size = (20, 34, 26, 44, 22)[i % 5]
            draw.text((16 + 9 * i, y), text, fill=(20, 20, 20), font=ImageFont.load_default(size=size))
            y += int(size * 1.9)
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    if not imagenet_norm:
        return np.ascontiguousarray((x - 0.5) / 0.5, dtype=np.float32)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def probability_logits(model_path) -> dict[str, str]:
    """Graph outputs computed by a final Sigmoid/Softmax -> the logits tensor under it (the fp16 check's target:
    a probability's error at an ambiguous point says little, the logits' says how far the engine drifted)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return {n.output[0]: n.input[0] for n in graph.node
            if n.output and n.output[0] in outputs and n.op_type in ("Sigmoid", "Softmax") and n.domain in ("", "ai.onnx")}


def decision_agreement(probs: np.ndarray, ref: np.ndarray) -> float:
    """Share of positions where a probability output makes the same call as the reference: the class (a Softmax
    over the last axis) or the side of DB's 0.3 threshold (a sigmoid map)."""
    if ref.ndim >= 2 and ref.shape[-1] > 1 and np.allclose(ref.sum(-1), 1, atol=1e-3):
        return float((probs.argmax(-1) == ref.argmax(-1)).mean())
    return float(((probs > 0.3) == (ref > 0.3)).mean())


def _entries() -> list[CorpusModel]:
    from . import efficientnet_lite, ocr, text, vision

    out = [
        CorpusModel("efficientnet_lite0", lambda: efficientnet_lite.export(), _photo_batch),
        CorpusModel("efficientnet_lite0_dynamo", lambda: efficientnet_lite.export(dynamo=True), _photo_batch,
                    heavy=True),
        CorpusModel("minilm", lambda: text.export_minilm(), _text_feeds),
        CorpusModel("minilm_dynamo", lambda: text.export_minilm(dynamo=True), _text_feeds, heavy=True),
        CorpusModel("bert_base", lambda: text.export_bert_base(), _random_text_feeds),
        CorpusModel("bert_base_dynamo", lambda: text.export_bert_base(dynamo=True), _random_text_feeds, heavy=True),
        CorpusModel("yolov8n", lambda: vision.export_yolov8n(),
                    lambda: [{"images": _ocr_image(640, 640)}], parts=YOLO_PARTS),
        CorpusModel("ppocr_det", lambda: ocr.ppocr_path("ppocr_det"),
                    lambda: [{"x": _ocr_image(320, 448, True)}, {"x": _ocr_image(352, 928, True)}],
                    fp16_max_error=5e-3, holdout=lambda: [{"x": _rendered_text(480, 640)}]),
        CorpusModel("ppocr_rec", lambda: ocr.ppocr_path("ppocr_rec"),
                    lambda: [{"x": _ocr_image(48, 320)}, {"x": _ocr_image(48, 160)}],
                    fp16_max_error=5e-3, holdout=lambda: [{"x": _rendered_text(48, 384, False)}]),
        CorpusModel("ppocr_cls", lambda: ocr.ppocr_path("ppocr_cls"),
                    lambda: [{"x": _ocr_image(48, 192)}]),
    ]
    for name in vision.TORCHVISION_MODELS:
        light = name == "mobilenet_v3_large"
        out.append(CorpusModel(name, lambda n=name: vision.export_torchvision(n), _photo_batch, heavy=not light))
        out.append(CorpusModel(f"{name}_dynamo", lambda n=name: vision.export_torchvision(n, dynamo=True),
                               _photo_batch, heavy=True))
    return out


CORPUS: dict[str, CorpusModel] = {m.name: m for m in _entries()}


def profile_for(feeds_list: list[dict[str, np.ndarray]]):
    """One optimization profile spanning a corpus entry's feeds: min/max over them, opt = the first feed's."""
    from ..plan.profiles import Profile

    shapes = {}
    for name in feeds_list[0]:
        dims = [list(f[name].shape) for f in feeds_list]
        shapes[name] = ([min(d) for d in zip(*dims)], dims[0], [max(d) for d in zip(*dims)])
    return Profile(shapes)
