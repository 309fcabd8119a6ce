"""The engine as plain data: the plan (ordered steps over named values, weights by reference), optimization
profiles, the compile step from an onnx-ir model to a plan, and the engine file format. Nothing here runs a model."""
