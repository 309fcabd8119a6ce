"""fp16 / bf16 EfficientNet-Lite0 (real ImageNet weights) on real photos vs onnxruntime fp32."""

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch

from greenrt.onnx.importer import load_model
from greenrt.passes import optimize
from greenrt.build import observe_ranges
from greenrt.precision import PrecisionConfig, apply_precision, parse_layer_precision
from greenrt.runtime.executor import Executor
from greenrt.zoo import efficientnet_lite

LOW = {"fp16": ir.DataType.FLOAT16, "bf16": ir.DataType.BFLOAT16}
# fp16 keeps 11 significant bits, bf16 8: over ~60 layers bf16 logits drift ~3% of the max logit.
TOL = {"fp16": 1e-2, "bf16": 5e-2}


@pytest.fixture(scope="module")
def enet():
    path = efficientnet_lite.export()
    photos = efficientnet_lite.photos()
    assert len(photos) >= 4
    images = np.concatenate([efficientnet_lite.preprocess(img) for img in photos.values()])
    noise = np.random.default_rng(99).standard_normal((2, 3, 224, 224)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return {
        "path": path,
        "images": images,
        "noise": noise,
        "ref_images": sess.run(None, {"image": images})[0],
        "ref_noise": sess.run(None, {"image": noise})[0],
    }


def build(path, config, samples=None):
    model = load_model(path)
    optimize(model)
    report = apply_precision(model, config, samples and observe_ranges(model, samples))
    return model, report


def run(model, x):
    with torch.inference_mode():
        out = Executor.from_model(model).run({"image": torch.from_numpy(x)})[0]
    assert out.dtype == torch.float32
    return out.numpy()


def rel(out, ref):
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_efficientnet_reduced_precision(enet, precision):
    model, report = build(enet["path"], PrecisionConfig(precision), [{"image": enet["images"][:2]}])
    low = LOW[precision]
    assert model.graph.inputs[0].name == "image" and model.graph.inputs[0].dtype == ir.DataType.FLOAT
    assert [v.name for v in model.graph.outputs] == ["logits"] and model.graph.outputs[0].dtype == ir.DataType.FLOAT
    convs = [n for n in model.graph if n.op_type in ("FusedConv", "Conv")]
    assert len(convs) == 49 and all(n.outputs[0].dtype == low and n.inputs[1].dtype == low for n in convs)
    assert report.counts.get(precision, 0) == len(report.nodes) and report.fallbacks == []
    assert report.casts_inserted == 2  # image in, logits out

    logits = run(model, enet["images"])
    assert np.isfinite(logits).all()
    assert rel(logits, enet["ref_images"]) <= TOL[precision]
    assert (logits.argmax(1) == enet["ref_images"].argmax(1)).all()
    noise_logits = run(model, enet["noise"])
    assert rel(noise_logits, enet["ref_noise"]) <= TOL[precision]


def test_efficientnet_overrides_by_op_type_and_name(enet):
    spec = "GlobalAveragePool=fp32,/_blocks.0/*=fp32,/_fc/*=fp32"
    model, report = build(enet["path"], PrecisionConfig("fp16", parse_layer_precision(spec)))
    kept = [n for n in model.graph if n.op_type == "GlobalAveragePool" or n.name.startswith(("/_blocks.0/", "/_fc/"))]
    # (the block's zero Pad was folded into its depthwise Conv by the passes)
    assert {n.name for n in kept} == {"/_avg_pooling/GlobalAveragePool", "/_blocks.0/_depthwise_conv/Conv",
                                      "/_blocks.0/_project_conv/Conv", "/_fc/Gemm"}
    for n in kept:
        assert report.precision_of(n.name) == "fp32"
        assert all(v.dtype == ir.DataType.FLOAT for v in n.outputs)
        assert all(v.dtype == ir.DataType.FLOAT for v in n.inputs if v is not None and v.dtype is not None
                   and v.dtype.is_floating_point())
    assert {n.node for n in report.overridden} == {n.name for n in kept}
    assert report.precision_of("/_blocks.1/_expand_conv/Conv") == "fp16"
    # the fp32 classifier writes logits directly: no Cast at the end
    assert model.graph.outputs[0].producer().name == "/_fc/Gemm"
    logits = run(model, enet["images"])
    assert rel(logits, enet["ref_images"]) <= 1e-2
    assert (logits.argmax(1) == enet["ref_images"].argmax(1)).all()
