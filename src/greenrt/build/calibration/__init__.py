"""INT8 calibration: the data a model is run on (data.py), streaming histograms and the calibrators that read a
threshold from them (histogram.py), and the run and its cache (calibrate.py).

    from greenrt.build.calibration import calibrate, open_calibration_data
    source = open_calibration_data("calib.npz", ["image"])
    result = calibrate("model.onnx", source, method="entropy", cache="model.calib.json")
    result.ranges["conv1_output"]      # the clipping threshold of symmetric INT8 for that tensor
"""

from .calibrate import (CACHE_FORMAT, Calibration, Drift, calibrate, check_drift, graph_sha256, load_cache,
                        model_input_names)
from .data import CalibrationDataError, CalibrationSource, ImageSpec, open_calibration_data
from .histogram import BINS, DEFAULT_PERCENTILE, METHODS, AbsHistogram, threshold

__all__ = ["AbsHistogram", "BINS", "CACHE_FORMAT", "Calibration", "CalibrationDataError", "CalibrationSource",
           "DEFAULT_PERCENTILE", "Drift", "ImageSpec", "METHODS", "calibrate", "check_drift", "graph_sha256",
           "load_cache", "model_input_names",
           "open_calibration_data", "threshold"]
