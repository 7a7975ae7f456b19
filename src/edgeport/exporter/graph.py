"""Layers of an exported graph: which nodes belong to which PyTorch module.

The exporters keep the module path in node names (ONNX: ``/m/encoder/layer.0/output/dense/
MatMul``; OpenVINO from torch: ``__module.m.encoder.layer.0.output.dense/aten::linear/
MatMul``). A *layer* is a module that owns a weighted MatMul/Gemm, or an embedding table
(a Gather from a weight): the unit that sensitivity analysis ranks and that a budget may
keep in higher precision.
"""

from __future__ import annotations

import re
from pathlib import Path

WRAPPER_PREFIX = "m."  # the attribute of TaskModule that holds the Hugging Face model
WEIGHTED_OPS = ("MatMul", "Gemm")
EMBEDDING_OPS = ("Gather",)


def module_of_onnx_node(node_name: str) -> str:
    parts = [p for p in node_name.split("/") if p]
    path = ".".join(parts[:-1])
    return path[len(WRAPPER_PREFIX):] if path.startswith(WRAPPER_PREFIX) else path


def module_of_openvino_node(node_name: str) -> str:
    match = re.match(r"__module\.([^/]+)", node_name)
    path = match.group(1) if match else node_name.split("/")[0]
    return path[len(WRAPPER_PREFIX):] if path.startswith(WRAPPER_PREFIX) else path


def layers_from_onnx(onnx_path: Path) -> dict[str, list[str]]:
    """Module path -> names of its weighted MatMul/Gemm nodes, in graph order."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    constants = {out for n in graph.node if n.op_type == "Constant" for out in n.output}
    layers: dict[str, list[str]] = {}
    for node in graph.node:
        weighted = node.op_type in WEIGHTED_OPS and any(i in weights or i in constants for i in node.input)
        table = node.op_type in EMBEDDING_OPS and node.input[0] in weights
        if weighted or table:
            layers.setdefault(module_of_onnx_node(node.name), []).append(node.name)
    return layers


def onnx_nodes_for(onnx_path: Path, modules: tuple[str, ...]) -> list[str]:
    layers = layers_from_onnx(onnx_path)
    return [name for module in modules for name in layers.get(module, [])]


def linear_macs_from_onnx(onnx_path: Path) -> dict[str, int]:
    """Module path -> multiply-accumulates per token of its weighted MatMul/Gemm nodes (the
    weight's element count; embedding lookups have none)."""
    import numpy as np
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].t.dims:
            shapes[node.output[0]] = tuple(node.attribute[0].t.dims)
    macs: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in WEIGHTED_OPS:
            dims = [shapes[i] for i in node.input[:2] if i in shapes]
            if dims:
                module = module_of_onnx_node(node.name)
                macs[module] = macs.get(module, 0) + int(np.prod(dims[0]))
    return macs


def int8_mac_share(onnx_path: Path, kept_fp: tuple[str, ...] | list[str]) -> float:
    """The share of the linear layers' multiply-accumulates that run in INT8 when the given
    modules are kept in higher precision (every other linear layer quantized)."""
    macs = linear_macs_from_onnx(onnx_path)
    total = sum(macs.values())
    kept = sum(v for module, v in macs.items() if module in set(kept_fp))
    return (total - kept) / total if total else 0.0
