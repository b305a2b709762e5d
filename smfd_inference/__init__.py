"""Using trained SMFD weights: the cascade, restoring aligned faces and photos (detect → align → paste back), face
parsing for unlabelled face sets, ONNX export and runtime, and the deblur command."""
