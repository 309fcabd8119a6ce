"""What the --opt-level 4 build chooses for the engine as a whole on this device (greenrt's executor or Inductor's
compiled graph), with both timings, for suite models at one batch: a quick look before a suite run.

    python bench/probes/engine_choice.py --device cuda --models mobilenet_v3_large:256 --out DIR/engine_choice.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    from greenrt.build import BuildConfig, build_engine
    from greenrt.plan.profiles import parse_profile
    from greenrt.tools.results import collect_metadata, command_line

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--models", default="mobilenet_v3_large:256")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    out = {"metadata": collect_metadata(command_line(), device=args.device), "models": []}
    for item in args.models.split(","):
        name, batch = item.split(":")
        path = folder / f"{name}.onnx"
        subprocess.run([sys.executable, str(ROOT / "bench" / "suite_models.py"), name, str(path)], check=True)
        t0 = time.perf_counter()
        header = build_engine(path, folder / f"{name}.engine", BuildConfig(
            device=args.device, precision=args.precision, opt_level=4,
            profiles=[parse_profile(f"image:1x3x224x224/{batch}x3x224x224/{batch}x3x224x224")]), log=print)
        choice = header["report"]["tactics"].get("engine")
        out["models"].append({"model": name, "batch": int(batch), "engine_choice": choice,
                              "build_seconds": round(time.perf_counter() - t0, 1)})
        print(name, batch, json.dumps(choice), flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
