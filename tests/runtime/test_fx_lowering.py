"""The FX lowering: a plan (or a slice of one) as a torch.fx GraphModule gives the executor's results, bitwise on
CPU; specialized shape math is baked in; non-lowerable steps (an If) are named or split off; torch.compile takes
the module (aot_eager here; Inductor in the heavy-marked test)."""

import time

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from greenrt.build import BuildConfig, build_engine
from greenrt.onnx.importer import load_model
from greenrt.plan.engine_file import read_engine
from greenrt.runtime.executor import Executor
from greenrt.runtime.fx_lowering import LoweringError, lower_to_fx, lowerable, split_lowerable
from greenrt.runtime.specialize import ShapeSpecializer

from ..build.test_builder import _cnn
from ..conftest import make_mlp_model


def _feeds(rng, **shapes):
    return {name: torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) for name, shape in shapes.items()}


def _run_gm(gm, input_names, feeds):
    return list(gm(*[feeds[n] for n in input_names]))


def _assert_same(got, expected, exact=True):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        if exact:
            assert torch.equal(g, e), (g - e).abs().max()
        else:
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def _step_calls(gm):
    return [n for n in gm.graph.nodes if "greenrt_step" in n.meta]


def test_mlp_whole_plan_matches_executor_bitwise_and_compiles(rng):
    executor = Executor.from_model(load_model(make_mlp_model()))
    gm, inputs, outputs = lower_to_fx(executor)
    assert inputs == ["x"] and outputs == ["probs"]
    # one FX node per plan step, each calling the op's own implementation
    assert [n.meta["greenrt_step"] for n in _step_calls(gm)] == [b.step.name for b in executor.steps]
    assert [n.target for n in _step_calls(gm)] == [b.impl.fn for b in executor.steps]
    assert sum(n.op == "get_attr" for n in gm.graph.nodes) == 4  # W1, b1, W2, b2
    compiled = torch.compile(gm, backend="aot_eager", fullgraph=True)
    for batch in (1, 5):
        feeds = _feeds(rng, x=(batch, 8))
        expected = executor.run(feeds)
        _assert_same(_run_gm(gm, inputs, feeds), expected)
        _assert_same(_run_gm(compiled, inputs, feeds), expected, exact=False)


def _reshape_model():
    # y = Reshape(Relu(x), Concat(Shape(x)[0:1], [-1])) * w, then ReduceMean over a constant axis
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Slice", ["s", "zero", "one"], ["s0"], name="slice"),
        helper.make_node("Concat", ["s0", "minus1"], ["target"], axis=0, name="concat"),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "target"], ["flat"], name="reshape"),
        helper.make_node("Mul", ["flat", "w"], ["y"], name="scale"),
        helper.make_node("ReduceMean", ["y", "one"], ["m"], keepdims=1, name="mean"),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("zero", [0]), ("one", [1]), ("minus1", [-1]))]
    inits.append(numpy_helper.from_array(np.random.default_rng(0).standard_normal(12).astype(np.float32), "w"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 12]),
                               helper.make_tensor_value_info("m", TensorProto.FLOAT, ["B", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_specialization_bakes_shape_math_into_constants(rng):
    executor = Executor.from_model(load_model(_reshape_model()))
    feeds = _feeds(rng, x=(5, 3, 4))
    spec = ShapeSpecializer(executor).prepare(feeds)
    gm, inputs, outputs = lower_to_fx(executor, specialization=spec)
    assert inputs == ["x"] and outputs == ["y", "m"]
    # only the data steps are nodes; Reshape's target and ReduceMean's axes are Python lists, not tensors
    assert [n.meta["greenrt_step"] for n in _step_calls(gm)] == ["relu", "reshape", "scale", "mean"]
    reshape = next(n for n in _step_calls(gm) if n.meta["greenrt_step"] == "reshape")
    assert reshape.args[1] == [5, -1]
    mean = next(n for n in _step_calls(gm) if n.meta["greenrt_step"] == "mean")
    assert mean.args[1] == [1]
    _assert_same(_run_gm(gm, inputs, feeds), executor.run(feeds))
    # nothing reads a tensor on the host: dynamo captures it in one graph
    compiled = torch.compile(gm, backend="aot_eager", fullgraph=True)
    _assert_same(_run_gm(compiled, inputs, feeds), executor.run(feeds), exact=False)
    # without a specialization the shape math is lowered as nodes and still gives the same results
    gm_all, _, _ = lower_to_fx(executor)
    assert len(_step_calls(gm_all)) == len(executor.steps)
    _assert_same(_run_gm(gm_all, inputs, feeds), executor.run(feeds))


@pytest.fixture(scope="module")
def cnn_engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("fx_cnn")
    build_engine(_cnn(d / "cnn.onnx"), d / "cnn.engine", BuildConfig(device="cpu"), log=lambda m: None)
    return read_engine(d / "cnn.engine", device="cpu")


def test_engine_cnn_with_fused_conv_matches_executor(cnn_engine, rng):
    executor = Executor(cnn_engine.plan, cnn_engine.weights, "cpu")
    assert "FusedConv" in [s.op_type for s in cnn_engine.plan.steps]
    gm, inputs, outputs = lower_to_fx(cnn_engine.plan, weights=cnn_engine.weights)  # from a plan + weights
    for batch in (1, 3):
        feeds = _feeds(rng, x=(batch, 3, 16, 16))
        expected = executor.run(feeds)
        _assert_same(_run_gm(gm, inputs, feeds), expected)
        # specialized per shape, the whole engine (oneDNN fused convs, Flatten) is one dynamo graph
        spec = ShapeSpecializer(executor).prepare(feeds)
        gm_spec, inputs, _ = lower_to_fx(executor, specialization=spec)
        _assert_same(_run_gm(gm_spec, inputs, feeds), expected)
        compiled = torch.compile(gm_spec, backend="aot_eager", fullgraph=True)
        _assert_same(_run_gm(compiled, inputs, feeds), expected, exact=False)


def test_slices_of_a_plan_chain_to_the_executor_result(cnn_engine, rng):
    executor = Executor(cnn_engine.plan, cnn_engine.weights, "cpu")
    steps = cnn_engine.plan.steps
    cut = len(steps) // 2
    feeds = _feeds(rng, x=(2, 3, 16, 16))
    env = dict(feeds)
    for part in (steps[:cut], steps[cut:]):
        gm, inputs, outputs = lower_to_fx(executor, part)
        env.update(zip(outputs, _run_gm(gm, inputs, env)))
    _assert_same([env[n] for n in executor.output_names], executor.run(feeds))


def _if_model():
    """y = (Relu(h) if sum(h) > 0 else Neg(h)) * w with h = x * 2: an If on data in the middle of the plan."""
    then_g = helper.make_graph([helper.make_node("Relu", ["h"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["h"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 4])])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["h"], name="double"),
        helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0, name="sum"),
        helper.make_node("Greater", ["s", "zero"], ["cond"], name="positive"),
        helper.make_node("If", ["cond"], ["b"], then_branch=then_g, else_branch=else_g, name="branch"),
        helper.make_node("Mul", ["b", "w"], ["y"], name="scale"),
    ]
    inits = [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]), helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             numpy_helper.from_array(np.random.default_rng(5).standard_normal(4).astype(np.float32), "w")]
    graph = helper.make_graph(nodes, "if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_if_is_refused_by_name_and_split_off(rng):
    executor = Executor.from_model(load_model(_if_model()))
    with pytest.raises(LoweringError, match=r"'branch' \(If\).*subgraph"):
        lower_to_fx(executor)
    parts = split_lowerable(executor.plan.steps)
    assert [(ok, [s.name for s in part]) for ok, part in parts] == [
        (True, ["double", "sum", "positive"]), (False, ["branch"]), (True, ["scale"])]
    assert not lowerable(executor.plan.steps[3]) and lowerable(executor.plan.steps[0])
    by_step = {id(b.step): b for b in executor.steps}
    for sign in (1.0, -1.0):  # both branches
        feeds = {"x": torch.from_numpy(np.abs(rng.standard_normal((3, 4))).astype(np.float32) * sign)}
        env = dict(feeds)
        for ok, part in parts:
            if ok:
                gm, inputs, outputs = lower_to_fx(executor, part)
                env.update(zip(outputs, _run_gm(gm, inputs, env)))
            else:  # the executor runs the If on the values so far
                seen = {}
                executor.execute([by_step[id(s)] for s in part], env, want_outputs=False,
                                 observer=lambda step, res: seen.update(zip(step.outputs, res)))
                env.update(seen)
        _assert_same([env["y"]], executor.run(feeds))


def test_lowerable_predicate():
    from greenrt.plan.plan import PlanStep, TensorSpec

    def step(op_type, domain="", **kw):
        return PlanStep(domain, op_type, 1, f"n_{op_type}", ["x"], ["y"], **kw)

    assert lowerable(step("Relu")) and lowerable(step("FusedConv", "greenrt"))
    for bad in (step("NonZero"), step("RandomNormal"), step("SequenceConstruct"), step("OptionalHasElement"),
                step("Loop", attrs={"body": {"graph": 0}}),
                step("Identity", output_specs=[TensorSpec("y", 8)]),  # a string tensor
                step("Identity", input_specs=[TensorSpec("x", 1, kind="sequence")])):
        assert not lowerable(bad), bad.op_type


def test_corpus_engine_lowered_whole_matches_executor(tmp_path):
    from greenrt.zoo.corpus import CORPUS

    entry = CORPUS["ppocr_cls"]
    try:
        path = entry.export()
    except Exception as exc:  # the corpus model's files are not on this machine
        pytest.skip(f"ppocr_cls unavailable: {exc}")
    feeds_np = entry.inputs()[0]
    build_engine(path, tmp_path / "cls.engine", BuildConfig(device="cpu"), log=lambda m: None, samples=[feeds_np])
    engine = read_engine(tmp_path / "cls.engine", device="cpu")
    executor = Executor(engine.plan, engine.weights, "cpu")
    assert all(ok for ok, _ in split_lowerable(executor.steps))
    feeds = {k: torch.from_numpy(v) for k, v in feeds_np.items()}
    spec = ShapeSpecializer(executor).prepare(feeds)
    gm, inputs, outputs = lower_to_fx(executor, specialization=spec)
    expected = executor.run(feeds)
    _assert_same(_run_gm(gm, inputs, feeds), expected)
    compiled = torch.compile(gm, backend="aot_eager", fullgraph=True)
    _assert_same(_run_gm(compiled, inputs, feeds), expected, exact=False)


def _ctx_model():
    """Ops that take the OpContext: MaxPool, Split (two outputs), Cast; a ConstantOfShape on a computed shape."""
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Split", ["p"], ["a", "b"], axis=1, num_outputs=2, name="split"),
        helper.make_node("Cast", ["b"], ["b16"], to=TensorProto.FLOAT16, name="to_half"),
        helper.make_node("Cast", ["b16"], ["b32"], to=TensorProto.FLOAT, name="to_float"),
        helper.make_node("Shape", ["a"], ["s"], name="shape"),
        helper.make_node("ConstantOfShape", ["s"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5]),
                         name="ones"),
        helper.make_node("Mul", ["a", "ones"], ["a2"], name="scale"),
        helper.make_node("Sub", ["a2", "b32"], ["y"], name="sub"),
    ]
    graph = helper.make_graph(nodes, "ctx", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_ops_taking_the_op_context_and_multi_output_steps(rng):
    executor = Executor.from_model(load_model(_ctx_model()))
    assert {b.step.name for b in executor.steps if b.impl.wants_ctx} >= {"pool", "split", "to_half", "ones"}
    feeds = _feeds(rng, x=(3, 4, 8, 8))
    expected = executor.run(feeds)
    gm, inputs, _ = lower_to_fx(executor)
    assert any(n.op == "get_attr" and n.target.startswith("ctx") for n in gm.graph.nodes)
    _assert_same(_run_gm(gm, inputs, feeds), expected)
    gm, inputs, _ = lower_to_fx(executor, specialization=ShapeSpecializer(executor).prepare(feeds))
    _assert_same(_run_gm(gm, inputs, feeds), expected)
    compiled = torch.compile(gm, backend="aot_eager", fullgraph=True)
    _assert_same(_run_gm(compiled, inputs, feeds), expected, exact=False)


def test_corpus_engine_lowered_slice_by_slice(tmp_path):
    """efficientnet_lite0's CPU engine cut into four slices, each lowered and run, chained: the engine's result."""
    from greenrt.zoo.corpus import CORPUS

    entry = CORPUS["efficientnet_lite0"]
    try:
        path = entry.export()
    except Exception as exc:
        pytest.skip(f"efficientnet_lite0 unavailable: {exc}")
    feeds_np = {k: v[:1] for k, v in entry.inputs()[0].items()}
    build_engine(path, tmp_path / "e.engine", BuildConfig(device="cpu"), log=lambda m: None, samples=[feeds_np])
    engine = read_engine(tmp_path / "e.engine", device="cpu")
    executor = Executor(engine.plan, engine.weights, "cpu")
    feeds = {k: torch.from_numpy(v) for k, v in feeds_np.items()}
    steps = engine.plan.steps
    bounds = [0, len(steps) // 4, len(steps) // 2, 3 * len(steps) // 4, len(steps)]
    env = dict(feeds)
    for lo, hi in zip(bounds, bounds[1:]):
        gm, inputs, outputs = lower_to_fx(executor, steps[lo:hi])
        assert outputs  # every slice hands something on
        env.update(zip(outputs, _run_gm(gm, inputs, env)))
    _assert_same([env[n] for n in executor.output_names], executor.run(feeds))


@pytest.mark.heavy  # Inductor's C++ compile: minutes on a cold cache; run with -m heavy
def test_inductor_compiles_the_lowered_cnn(cnn_engine, rng):
    executor = Executor(cnn_engine.plan, cnn_engine.weights, "cpu")
    feeds = _feeds(rng, x=(2, 3, 16, 16))
    gm, inputs, _ = lower_to_fx(executor, specialization=ShapeSpecializer(executor).prepare(feeds))
    compiled = torch.compile(gm, backend="inductor", fullgraph=True)
    start = time.perf_counter()
    got = _run_gm(compiled, inputs, feeds)
    print(f"inductor compile+first run: {time.perf_counter() - start:.1f}s")
    _assert_same(got, executor.run(feeds), exact=False)
