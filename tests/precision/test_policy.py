import pytest

from greenrt.errors import GreenrtError
from greenrt.precision import PrecisionConfig, parse_layer_precision


def test_parse_spec_in_order():
    rules = parse_layer_precision("encoder.*.softmax=fp32, Softmax=FP32,/layer1/*=float16,, x=bf16")
    assert rules == [("encoder.*.softmax", "fp32"), ("Softmax", "fp32"), ("/layer1/*", "fp16"), ("x", "bf16")]


def test_parse_empty():
    assert parse_layer_precision("") == []
    assert parse_layer_precision(" , ") == []


@pytest.mark.parametrize("spec, bad", [
    ("Softmax=fp32,Conv", "'Conv'"),
    ("Softmax=fp8", "'Softmax=fp8'"),
    ("=fp16", "'=fp16'"),
    ("Softmax=", "'Softmax='"),
])
def test_parse_errors_name_the_item(spec, bad):
    with pytest.raises(GreenrtError) as info:
        parse_layer_precision(spec)
    assert bad in str(info.value)


def test_resolve_name_or_op_type_later_wins():
    cfg = PrecisionConfig("fp16", parse_layer_precision("Softmax=fp32,/enc/*=bf16,/enc/attn/*=fp32"))
    assert cfg.resolve("/dec/softmax", "Softmax") == ("fp32", "Softmax=fp32")
    assert cfg.resolve("/enc/mlp/MatMul", "MatMul") == ("bf16", "/enc/*=bf16")
    assert cfg.resolve("/enc/attn/Softmax", "Softmax") == ("fp32", "/enc/attn/*=fp32")
    assert cfg.resolve("/enc/Softmax", "Softmax") == ("bf16", "/enc/*=bf16")  # later rule wins
    assert cfg.resolve("/dec/MatMul", "MatMul") == ("fp16", None)


def test_config_validates():
    with pytest.raises(GreenrtError, match="fp64"):
        PrecisionConfig("fp64")
    with pytest.raises(GreenrtError, match="int8"):
        PrecisionConfig("fp16", [("Conv", "int8")])
    assert PrecisionConfig("half").default == "fp16"
