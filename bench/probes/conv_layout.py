"""Probe for the tactics issue: how much a per-layer layout choice could win on depthwise and 1x1 convs (fp16).

    python bench/probes/conv_layout.py --out conv_layout.json      # on the GPU machine

For conv shapes of MobileNetV3-Large and EfficientNet-B0 at batch 256: torch conv2d in channels_last (what greenrt
runs today for every conv), in NCHW, and in NCHW with the two reformats (NHWC -> NCHW before, back after) counted,
each the median of CUDA-event timings over 50 calls after warm-up with cudnn.benchmark on. Written as
greenrt-results/1 records (runner = layout), so the tactic timer's first candidates rest on a measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import torch  # noqa: E402

from greenrt.tools.results import collect_metadata, command_line, make_record, write_results  # noqa: E402

# (name, channels in, channels out, kernel, stride, groups, spatial) at the shapes the two networks run
SHAPES = [
    ("mbv3 dw3x3 s1 16@112", 16, 16, 3, 1, 16, 112),
    ("mbv3 dw3x3 s2 64@112", 64, 64, 3, 2, 64, 112),
    ("mbv3 dw3x3 s1 72@56", 72, 72, 3, 1, 72, 56),
    ("mbv3 dw5x5 s2 72@56", 72, 72, 5, 2, 72, 56),
    ("mbv3 dw5x5 s1 120@28", 120, 120, 5, 1, 120, 28),
    ("mbv3 dw3x3 s1 480@14", 480, 480, 3, 1, 480, 14),
    ("mbv3 dw5x5 s1 960@7", 960, 960, 5, 1, 960, 7),
    ("b0 dw3x3 s2 96@112", 96, 96, 3, 2, 96, 112),
    ("b0 dw5x5 s1 480@14", 480, 480, 5, 1, 480, 14),
    ("mbv3 pw1x1 64->24 @56", 64, 24, 1, 1, 1, 56),
    ("mbv3 pw1x1 120->40 @28", 120, 40, 1, 1, 1, 28),
]


def time_ms(fn, calls=50):
    for _ in range(5):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(calls)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return sorted(s.elapsed_time(e) for s, e in zip(starts, ends))[calls // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    records = []
    print(f"{'shape':28} {'NHWC ms':>8} {'NCHW ms':>8} {'NCHW+reformat':>14} {'max rel diff':>12}")
    for name, cin, cout, k, stride, groups, hw in SHAPES:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(args.batch, cin, hw, hw, device="cuda", generator=g).half()
        w = (torch.randn(cout, cin // groups, k, k, device="cuda", generator=g) * (2 / (cin // groups * k * k)) ** .5).half()
        b = torch.randn(cout, device="cuda", generator=g).half()
        x_cl, w_cl = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        conv = torch.nn.functional.conv2d
        pad = k // 2
        with torch.inference_mode():
            nhwc = time_ms(lambda: conv(x_cl, w_cl, b, stride, pad, 1, groups))
            nchw = time_ms(lambda: conv(x, w, b, stride, pad, 1, groups))
            both = time_ms(lambda: conv(x_cl.contiguous(), w, b, stride, pad, 1, groups).contiguous(
                memory_format=torch.channels_last))
            ref = conv(x.float(), w.float(), b.float(), stride, pad, 1, groups)
            diff = max(((conv(x_cl, w_cl, b, stride, pad, 1, groups).float() - ref).abs().max() /
                        ref.abs().max()).item(),
                       ((conv(x, w, b, stride, pad, 1, groups).float() - ref).abs().max() / ref.abs().max()).item())
        print(f"{name:28} {nhwc:8.3f} {nchw:8.3f} {both:14.3f} {diff:12.2e}")
        for runner, ms in (("conv2d channels_last", nhwc), ("conv2d nchw", nchw),
                           ("conv2d nchw + reformats from/to channels_last", both)):
            records.append(make_record(name, runner, "fp16", args.batch, "cuda", items_per_s=args.batch / ms * 1e3,
                                       latency_ms_p50=ms, latency_ms_p99=None, joules_per_item=None, watts=None,
                                       peak_mem_bytes=None, max_rel_err_vs_fp32=diff))
    write_results(args.out, collect_metadata(command_line(), device="cuda", notes=(
        "Per-conv layout probe for the tactics issue: median of 50 CUDA-event timings per conv after 5 warm-up "
        "calls, cudnn.benchmark on, fp16, random inputs; max_rel_err_vs_fp32 is the worse of the two layouts "
        "against an fp32 conv of the same fp16 inputs.")), records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
