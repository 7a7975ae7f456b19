"""Compression passes (model in, model out), run in PyTorch before export: pruning,
low-rank factorization, vocabulary pruning, distillation. See ``pipeline.py``."""
