"""Probe for the Hopper INT8 issue (11): greenrt.QConv's fused epilogue as one cuDNN graph, exact against greenrt's
INT8 reference, and how fast each of its execution plans runs against torch's fp16 conv + bias + ReLU.

    python bench/probes/cudnn_int8_conv.py --batch 256 --out cudnn_int8_conv.json     # on the GPU machine

For ResNet-50 conv shapes: the graph conv_fprop(INT8 NHWC x, INT8 w) -> INT32 accumulation -> * (x_scale * w_scale[c])
-> + bias[c] -> ReLU -> * (1 / y_scale) -> INT8 out (nvidia-cudnn-frontend, carried with --no-deps), every plan the
heuristics and the fallback list offer built (the ALL policy), each plan's output compared with ops/int8.py's QConv on
the same integers (the count of INT8 outputs that differ, and by how many steps), each plan timed (median of CUDA-event
timings over 30 calls after warm-up), and torch's fp16 channels-last conv2d with bias then ReLU on the same shape.
Written as greenrt-results/1 records (runner = "cudnn int8 plan <i>" or "torch fp16 conv+bias+relu").
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import torch  # noqa: E402

from greenrt.ops.int8 import INT8, QConv  # noqa: E402
from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

# (name, channels in, channels out, kernel, stride, spatial in)
SHAPES = [
    ("layer1 1x1 64->64 @56", 64, 64, 1, 1, 56),
    ("layer1 3x3 64->64 @56", 64, 64, 3, 1, 56),
    ("layer1 1x1 64->256 @56", 64, 256, 1, 1, 56),
    ("layer2 3x3 128->128 s2 @56", 128, 128, 3, 2, 56),
    ("layer2 3x3 128->128 @28", 128, 128, 3, 1, 28),
    ("layer3 3x3 256->256 @14", 256, 256, 3, 1, 14),
    ("layer3 1x1 256->1024 @14", 256, 1024, 1, 1, 14),
    ("layer4 3x3 512->512 @7", 512, 512, 3, 1, 7),
    ("layer4 1x1 512->2048 @7", 512, 2048, 1, 1, 7),
]


def median_ms(fn, runs: int = 30) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def probe(cudnn, handle, name, cin, cout, k, stride, size, batch, gen):
    pad = k // 2
    x = torch.randint(-127, 128, (batch, cin, size, size), generator=gen, dtype=torch.int8).cuda()
    w = torch.randint(-127, 128, (cout, cin, k, k), generator=gen, dtype=torch.int8).cuda()
    x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    x_scale = 0.02
    w_scale = (torch.rand(cout, generator=gen) * 2e-3 + 1e-4).cuda()
    bias = (torch.randn(cout, generator=gen) * 0.5).cuda()
    y_scale = 0.05
    ref = QConv(x, w, w_scale, bias, x_scale=x_scale, pads=[pad] * 4, strides=[stride] * 2, activation="Relu",
                out_dtype=INT8, y_scale=y_scale)
    # the reference epilogue's float32 constants, as cuDNN's pointwise ops read them
    scale = (torch.tensor(x_scale, dtype=torch.float32) * w_scale.float().cpu()).cuda().reshape(1, cout, 1, 1)
    inv = torch.tensor(1.0 / y_scale, dtype=torch.float32).reshape(1, 1, 1, 1).cuda()
    b4 = bias.float().reshape(1, cout, 1, 1)
    graph = cudnn.pygraph(io_data_type=cudnn.data_type.INT8, intermediate_data_type=cudnn.data_type.FLOAT,
                          compute_data_type=cudnn.data_type.INT32, handle=handle)
    X, W = graph.tensor_like(x), graph.tensor_like(w)
    S, B, INV = graph.tensor_like(scale), graph.tensor_like(b4), graph.tensor_like(inv)
    acc = graph.conv_fprop(image=X, weight=W, padding=[pad, pad], stride=[stride, stride], dilation=[1, 1],
                           compute_data_type=cudnn.data_type.INT32)
    f32 = cudnn.data_type.FLOAT  # the epilogue in float32 (with the graph's INT32 compute type it would round S to 0)
    y = graph.scale(input=acc, scale=S, compute_data_type=f32)
    y = graph.bias(input=y, bias=B, compute_data_type=f32)
    y = graph.relu(input=y, compute_data_type=f32)
    y = graph.scale(input=y, scale=INV, compute_data_type=f32)
    y.set_output(True).set_data_type(cudnn.data_type.INT8)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    graph.build_plans(cudnn.build_plan_policy.ALL)
    plans = graph.get_execution_plan_count()
    out = torch.empty_like(ref).to(memory_format=torch.channels_last)
    records = []
    for i in range(plans):
        ws = torch.empty(max(graph.get_workspace_size_plan_at_index(i), 1), device="cuda", dtype=torch.uint8)
        pack = {X: x, W: w, S: scale, B: b4, INV: inv, y: out}

        def run(i=i, ws=ws, pack=pack):
            graph.execute_plan_at_index(pack, ws, index=i, handle=handle)

        try:
            run()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001  (a plan that does not run is a record)
            records.append({"plan": i, "error": f"{type(exc).__name__}: {str(exc)[:160]}"})
            continue
        diff = (out.int() - ref.int()).abs()
        records.append({"plan": i, "name": graph.get_plan_name_at_index(i), "ms": median_ms(run),
                        "mismatched": int((diff > 0).sum()), "max_steps_off": int(diff.max()),
                        "workspace": graph.get_workspace_size_plan_at_index(i)})
    xf, wf, bf = x.half(), w.half(), bias.half()
    f16 = median_ms(lambda: torch.relu(torch.nn.functional.conv2d(xf, wf, bf, stride=stride, padding=pad)))
    return records, f16, ref.numel()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import cudnn

    torch.backends.cudnn.benchmark = True
    handle = cudnn.create_handle()
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream().cuda_stream)
    gen = torch.Generator().manual_seed(0)
    records = []
    print(f"cudnn backend {cudnn.backend_version_string()}, frontend {cudnn.__version__}, batch {args.batch}")
    print(f"{'shape':28s} {'plans':>5s} {'best int8 ms':>12s} {'fp16 ms':>8s} {'speedup':>7s} {'TOPS':>6s} exact")
    for name, cin, cout, k, stride, size in SHAPES:
        plans, f16, outputs = probe(cudnn, handle, name, cin, cout, k, stride, size, args.batch, gen)
        ok = [p for p in plans if "ms" in p]
        best = min(ok, key=lambda p: p["ms"]) if ok else None
        ops = 2 * outputs * cin * k * k
        for p in plans:
            records.append(make_record(name, f"cudnn int8 plan {p['plan']}", "int8", args.batch, "cuda",
                                       timed="ms" in p, **{k2: v for k2, v in p.items() if k2 != "plan"},
                                       max_abs_err_steps_vs_int8_reference=p.get("max_steps_off")))
        records.append(make_record(name, "torch fp16 conv+bias+relu", "fp16", args.batch, "cuda", timed=True,
                                   ms=f16, max_abs_err_steps_vs_int8_reference=None))  # speed only
        if best:
            off = [(p["plan"], p["mismatched"], p["max_steps_off"]) for p in ok if p["mismatched"]]
            print(f"{name:28s} {len(plans):5d} {best['ms']:12.3f} {f16:8.3f} {f16 / best['ms']:6.2f}x "
                  f"{ops / best['ms'] / 1e9:6.0f} {'all plans' if not off else f'NO (plan, outputs, steps): {off}'}")
        else:
            print(f"{name:28s} {len(plans):5d} no plan ran: {plans[:1]}")
    write_results(args.out, collect_metadata(command_line(), device="cuda", notes=(
        "cuDNN graph API INT8 conv with QConv's epilogue, every plan, against greenrt's INT8 reference and torch "
        "fp16")),
        records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
