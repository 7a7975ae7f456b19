"""Load a Hugging Face model folder, export it to ONNX, and check parity against PyTorch."""
