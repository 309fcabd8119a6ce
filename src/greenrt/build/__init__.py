"""The build stage: whatever runs a model to decide how to build it (sample and random inputs, range observation,
the accuracy search, the checks, the memory report) drives the stages below it and writes the engine.

    from greenrt.build import BuildConfig, build_engine
    build_engine("model.onnx", "model.engine", BuildConfig(device="cuda", precision="fp16"))

Only tools/ and the package's public API import this stage; nothing below it does. The builder needs onnx; the
input helpers (build/inputs.py) do not, so `greenrt run x.engine` works on the lean runtime install: the
builder is imported on first use.
"""

from .config import PRECISIONS, BuildConfig, build_command, parse_size


def __getattr__(name):
    if name == "build_engine":
        from .builder import build_engine

        return build_engine
    if name == "observe_ranges":
        from .observe import observe_ranges

        return observe_ranges
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BuildConfig", "build_engine", "build_command", "parse_size", "observe_ranges", "PRECISIONS"]
