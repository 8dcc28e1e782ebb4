"""Running ONNX models on rasters: tiling, onnxruntime sessions, the streamed pipeline."""
