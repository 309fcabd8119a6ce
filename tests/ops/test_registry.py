"""The op registry: version selection like onnx.reference, and the listing behind `greenrt inspect ops`."""

import pytest

from greenrt.ops import REGISTRY, load_all
from greenrt.ops.registry import Registry


def test_highest_version_not_above_opset_is_picked():
    reg = Registry()

    @reg.register("Thing", 1, 6)
    def thing_1(x):
        return x

    @reg.register("Thing", 13)
    def thing_13(x):
        return x

    assert reg.lookup("", "Thing", 5).since == 1
    assert reg.lookup("ai.onnx", "Thing", 12).since == 6
    assert reg.lookup("", "Thing", 20).fn is thing_13
    assert reg.lookup("", "Missing", 20) is None
    assert reg.versions("", "Thing") == [1, 6, 13]


def test_duplicate_registration_is_refused():
    reg = Registry()
    reg.register("Thing", 1)(lambda x: x)
    with pytest.raises(ValueError, match="twice"):
        reg.register("Thing", 1)(lambda x: x)


def test_ctx_detected_from_signature():
    reg = Registry()

    @reg.register("WithCtx", 1)
    def with_ctx(x, *, ctx):
        return x

    assert reg.lookup("", "WithCtx", 1).wants_ctx


def test_every_family_registers_ops_for_the_core_cnn_and_transformer_ops():
    load_all()
    for op_type in ("Conv", "Relu", "MatMul", "Gemm", "Softmax", "Reshape", "Transpose", "Concat", "Gather",
                    "LayerNormalization", "ReduceMean", "LSTM", "If", "Loop", "Scan", "Resize", "Cast", "Where"):
        assert REGISTRY.lookup("", op_type, 17) is not None, op_type
    families = {impl.family for impl in REGISTRY.all()}
    from greenrt.ops import FAMILIES

    assert families == set(FAMILIES)
