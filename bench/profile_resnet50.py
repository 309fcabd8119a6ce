"""Where the time goes: torch.profiler's top CUDA kernels for the ResNet-50 fp16 engine vs eager, batch 256."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def top_kernels(fn, x, label, n=14):
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            fn(x)
        torch.cuda.synchronize()
    print(f"== {label}")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=n, max_name_column_width=70))


def main():
    import torchvision

    import greenrt
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from greenrt.zoo.export import export_onnx

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    path = export_onnx(model, (torch.randn(1, 3, 224, 224),), Path("/tmp/r50p.onnx"), ["image"], ["logits"],
                       {"image": {0: "batch"}}, dynamo=False)
    build_engine(path, "/tmp/r50p.engine", BuildConfig(device="cuda", precision="fp16",
                 profiles=[parse_profile("image:256x3x224x224")]), log=lambda m: None)
    sess = greenrt.InferenceSession("/tmp/r50p.engine")
    eager = model.cuda().half().to(memory_format=torch.channels_last)
    x = torch.randn(256, 3, 224, 224, device="cuda")
    top_kernels(lambda t: sess.run_device({"image": t}), x, "greenrt engine")

    def eager_fn(t):
        with torch.inference_mode():
            return eager(t.half().contiguous(memory_format=torch.channels_last))

    top_kernels(eager_fn, x, "eager")


if __name__ == "__main__":
    main()
