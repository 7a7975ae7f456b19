"""The model floor every stage stands on: loading and saving plain and compressed Hugging Face
models (``load``), each family's declared anatomy (``families``), the compressed-module
structure record (``structure``), the exported task modules (``wrappers``) and the PyTorch
fp32 runner (``torch_runner``)."""
