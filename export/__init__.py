"""Export: model.pth, model_artifacts.pth, tokenizer and encoder files, ONNX with a parity check."""
