"""Single-op graphs through apply_precision (fp16 / bf16) vs onnxruntime fp32: every op greenrt lowers runs on CPU."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto as T, helper, numpy_helper

from greenrt.onnx.importer import load_model
from greenrt.precision import PrecisionConfig, apply_precision
from greenrt.runtime.executor import Executor

r = np.random.default_rng(2024)


def f(*shape, scale=1.0):
    return (r.standard_normal(shape) * scale).astype(np.float32)


CASES = {
 "ConvTranspose": ([helper.make_node("ConvTranspose",["x","W"],["y"],strides=[2,2])], {"x":f(1,4,8,8)}, {"W":f(4,3,3,3,scale=.3)}),
 "MaxPool": ([helper.make_node("MaxPool",["x"],["y"],kernel_shape=[3,3])], {"x":f(1,4,8,8)}, {}),
 "AveragePool": ([helper.make_node("AveragePool",["x"],["y"],kernel_shape=[3,3],pads=[1,1,1,1])], {"x":f(1,4,8,8)}, {}),
 "BatchNormalization": ([helper.make_node("BatchNormalization",["x","s","b","m","v"],["y"])], {"x":f(2,4,5,5)}, {"s":f(4),"b":f(4),"m":f(4),"v":np.abs(f(4))+.5}),
 "InstanceNormalization": ([helper.make_node("InstanceNormalization",["x","s","b"],["y"])], {"x":f(2,4,5,5)}, {"s":f(4),"b":f(4)}),
 "GroupNormalization": ([helper.make_node("GroupNormalization",["x","s","b"],["y"],num_groups=2)], {"x":f(2,4,5,5)}, {"s":f(4),"b":f(4)}),
 "Gemm": ([helper.make_node("Gemm",["x","W","b"],["y"],transB=1)], {"x":f(3,8)}, {"W":f(5,8),"b":f(5)}),
 "Softmax": ([helper.make_node("Softmax",["x"],["y"])], {"x":f(3,8)}, {}),
 "LogSoftmax": ([helper.make_node("LogSoftmax",["x"],["y"])], {"x":f(3,8)}, {}),
 "Erf": ([helper.make_node("Erf",["x"],["y"])], {"x":f(3,8)}, {}),
 "Gelu20": ([helper.make_node("Gelu",["x"],["y"])], {"x":f(3,8)}, {}),
 "HardSwish": ([helper.make_node("HardSwish",["x"],["y"])], {"x":f(3,8)}, {}),
 "Sigmoid": ([helper.make_node("Sigmoid",["x"],["y"])], {"x":f(3,8)}, {}),
 "Exp": ([helper.make_node("Exp",["x"],["y"])], {"x":f(3,8)}, {}),
 "Log": ([helper.make_node("Log",["x"],["y"])], {"x":np.abs(f(3,8))+.1}, {}),
 "Pow": ([helper.make_node("Pow",["x","p"],["y"])], {"x":np.abs(f(3,8))+.1}, {"p":np.array(1.7,np.float32)}),
 "ReduceMean": ([helper.make_node("ReduceMean",["x"],["y"],keepdims=0)], {"x":f(3,8)}, {}),
 "ReduceSumSquare": ([helper.make_node("ReduceSumSquare",["x"],["y"],keepdims=0)], {"x":f(3,8)}, {}),
 "ReduceLogSumExp": ([helper.make_node("ReduceLogSumExp",["x"],["y"],keepdims=0)], {"x":f(3,8)}, {}),
 "CumSum": ([helper.make_node("CumSum",["x","ax"],["y"])], {"x":f(3,8)}, {"ax":np.array(1,np.int64)}),
 "Einsum": ([helper.make_node("Einsum",["x","W"],["y"],equation="ij,jk->ik")], {"x":f(3,8)}, {"W":f(8,4)}),
 "ResizeLinear": ([helper.make_node("Resize",["x","","sc"],["y"],mode="linear")], {"x":f(1,2,5,5)}, {"sc":np.array([1,1,2,2],np.float32)}),
 "ResizeCubic": ([helper.make_node("Resize",["x","","sc"],["y"],mode="cubic")], {"x":f(1,2,5,5)}, {"sc":np.array([1,1,2,2],np.float32)}),
 "GridSample": ([helper.make_node("GridSample",["x","g"],["y"])], {"x":f(1,2,5,5),"g":np.clip(f(1,4,4,2),-1,1)}, {}),
 "LpNormalization": ([helper.make_node("LpNormalization",["x"],["y"])], {"x":f(3,8)}, {}),
 "TopK": ([helper.make_node("TopK",["x","k"],["y","i"])], {"x":f(3,8)}, {"k":np.array([3],np.int64)}),
 "ArgMax": ([helper.make_node("ArgMax",["x"],["y"])], {"x":f(3,8)}, {}),
 "PadReflect": ([helper.make_node("Pad",["x","p"],["y"],mode="reflect")], {"x":f(1,2,5,5)}, {"p":np.array([0,0,1,1,0,0,1,1],np.int64)}),
 "Clip": ([helper.make_node("Clip",["x","lo","hi"],["y"])], {"x":f(3,8)}, {"lo":np.array(-.5,np.float32),"hi":np.array(.5,np.float32)}),
 "Where": ([helper.make_node("Greater",["x","z"],["c"]),helper.make_node("Where",["c","x","w"],["y"])], {"x":f(3,8),"w":f(3,8)}, {"z":np.array(0.1,np.float32)}),
 "LSTM": ([helper.make_node("LSTM",["x","W","R","B"],["y"],hidden_size=4)], {"x":f(5,2,3)}, {"W":f(1,16,3,scale=.5),"R":f(1,16,4,scale=.5),"B":f(1,32,scale=.1)}),
 "GRU": ([helper.make_node("GRU",["x","W","R","B"],["y"],hidden_size=4)], {"x":f(5,2,3)}, {"W":f(1,12,3,scale=.5),"R":f(1,12,4,scale=.5),"B":f(1,24,scale=.1)}),
 "RNN": ([helper.make_node("RNN",["x","W","R","B"],["y"],hidden_size=4)], {"x":f(5,2,3)}, {"W":f(1,4,3,scale=.5),"R":f(1,4,4,scale=.5),"B":f(1,8,scale=.1)}),
 "Attention23": ([helper.make_node("Attention",["q","k","v"],["y"])], {"q":f(1,2,4,8),"k":f(1,2,6,8),"v":f(1,2,6,8)}, {}),
 "Conv1d": ([helper.make_node("Conv",["x","W"],["y"],group=2)], {"x":f(1,4,9)}, {"W":f(4,2,3)}),
 "Conv3d": ([helper.make_node("Conv",["x","W"],["y"])], {"x":f(1,2,5,5,5)}, {"W":f(3,2,3,3,3)}),
 "MatMulBatched": ([helper.make_node("MatMul",["x","W"],["y"])], {"x":f(2,3,8)}, {"W":f(8,4)}),
 "Round": ([helper.make_node("Round",["x"],["y"])], {"x":f(3,8,scale=5)}, {}),
 "Celu": ([helper.make_node("Celu",["x"],["y"])], {"x":f(3,8)}, {}),
 "Softplus": ([helper.make_node("Softplus",["x"],["y"])], {"x":f(3,8)}, {}),
 "Mish": ([helper.make_node("Mish",["x"],["y"])], {"x":f(3,8)}, {}),
 "DepthToSpace": ([helper.make_node("DepthToSpace",["x"],["y"],blocksize=2)], {"x":f(1,8,3,3)}, {}),
 # Y only: torch's fused kernel (fp32 statistics); with Mean and InvStdDev read: the explicit form
 "LayerNormalization": ([helper.make_node("LayerNormalization",["x","s","b"],["y"],epsilon=1e-6)], {"x":f(2,5,16)+3}, {"s":f(16),"b":f(16)}),
 "LayerNormalization2D": ([helper.make_node("LayerNormalization",["x","s","b"],["y"],axis=-2)], {"x":f(2,5,16)+3}, {"s":f(5,16),"b":f(5,16)}),
 "LayerNormalizationStats": ([helper.make_node("LayerNormalization",["x","s","b"],["y","mean","inv"])], {"x":f(2,5,16)+3}, {"s":f(16),"b":f(16)}),
}
TOL = {"fp16": 1e-2, "bf16": 2e-2}


def _proto(name, nodes, feeds, inits):
    ins = [helper.make_tensor_value_info(k, T.FLOAT, v.shape) for k, v in feeds.items()]
    outs = [helper.make_tensor_value_info(o, T.INT64 if (o == "i" or name == "ArgMax") else T.FLOAT, None)
            for o in nodes[-1].output]
    graph = helper.make_graph(nodes, name, ins, outs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return model


def _run(model, feeds):
    with torch.inference_mode():
        outs = Executor.from_model(model).run({k: torch.from_numpy(v) for k, v in feeds.items()})
    return [o.numpy() for o in outs]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_in_reduced_precision(name, precision):
    nodes, feeds, inits = CASES[name]
    proto = _proto(name, nodes, feeds, inits)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    model = load_model(proto)
    report = apply_precision(model, PrecisionConfig(precision))
    assert set(report.counts) == {precision}
    for out, want in zip(_run(model, feeds), ref):
        assert out.shape == want.shape and out.dtype == want.dtype
        if want.dtype.kind == "f":
            assert np.abs(out - want).max() <= TOL[precision] * np.abs(want).max(), name
        else:
            assert (out == want).all()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_float_range_stays_fp32(precision):
    """Range's length comes from its float inputs: bf16(3001) = 3008 would change the output's shape."""
    nodes = [helper.make_node("Range", ["s", "l", "d"], ["y"], name="range")]
    inits = {"s": np.array(0.5, np.float32), "l": np.array(3001.0, np.float32), "d": np.array(1.5, np.float32)}
    proto = _proto("Range", nodes, {}, inits)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})[0]
    model = load_model(proto)
    report = apply_precision(model, PrecisionConfig(precision))
    assert report.precision_of("range") == "fp32" and "Range" in report.fallbacks[0].reason
    out = _run(model, {})[0]
    assert out.shape == ref.shape and np.allclose(out, ref)
