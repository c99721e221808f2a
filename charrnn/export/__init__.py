"""A model for a static web page: one ONNX step, its vocabulary, and a page that samples with onnxruntime-web."""
