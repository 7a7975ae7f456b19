"""Per-channel smoothing (SmoothQuant, Xiao et al. 2023) of the activations that LayerNorm feeds
to weighted MatMuls, done on the fp32 ONNX before static per-tensor INT8 Q/DQ is placed.

BERT-family encoders carry a few LayerNorm output channels far larger than the rest (MiniLM:
channel 99 reaches 28 where the median channel's maximum is 2), so one per-tensor scale for
the FFN-up and Q/K/V inputs spends most of INT8's range on them. Smoothing divides each input
channel j by s_j = max|X_j|^alpha / max|W_j|^(1-alpha) (an explicit ``Mul`` before the MatMuls
that share the input; TensorRT fuses it with the quantize) and multiplies row j of each
weight by s_j: exact in fp32, and the per-tensor activation scale then fits the many channels.
It cannot be folded into LayerNorm's gamma: the same LayerNorm output is the residual branch.

Measured during development on all-MiniLM-L6-v2 (ModelOpt ``max`` calibration on the 278 built-in calibration
texts, residual Adds left unquantized, FFN-down kept out; report-set mean cosine vs fp32, 105
texts): no smoothing 0.9760 with FFN-down INT8 / smoothing LayerNorm-fed inputs at alpha 0.5:
0.9873 with FFN-down INT8 and 0.9984 without; alpha 0.3: 0.9856, 0.7: 0.9876. Smoothing the
GELU-fed FFN-down input as well made it worse (0.9372 at alpha 0.5, 0.7830 at 0.25): its peaks
are rare tokens, not channels, so only LayerNorm-fed inputs are smoothed. The variants that ship
are re-measured by bench/trt_int8_placement.py (README).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SMOOTHED_FROM = ("LayerNormalization",)
MIN_SCALE, MAX_SCALE = 1e-2, 1e2


@dataclass(frozen=True)
class SmoothedInput:
    tensor: str
    matmuls: tuple[str, ...]
    activation_max: float  # largest channel maximum before / after
    activation_max_after: float
    weight_max: float
    weight_max_after: float

    def as_dict(self) -> dict:
        return {"tensor": self.tensor, "matmuls": list(self.matmuls),
                "activation_max": [round(self.activation_max, 4), round(self.activation_max_after, 4)],
                "weight_max": [round(self.weight_max, 4), round(self.weight_max_after, 4)]}


def _groups(graph) -> dict[str, list]:
    """Activation tensor -> the weighted MatMuls it feeds, for tensors LayerNorm produces; a
    group whose weights serve anything else (tied weights) is left alone."""
    inits = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    groups: dict[str, list] = {}
    for node in graph.node:
        source = producer.get(node.input[0]) if node.op_type == "MatMul" else None
        if source is not None and source.op_type in SMOOTHED_FROM and node.input[1] in inits:
            groups.setdefault(node.input[0], []).append(node)
    return {tensor: nodes for tensor, nodes in groups.items() if all(uses[n.input[1]] == 1 for n in nodes)}


def channel_maxima(onnx_path: Path, tensors: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """max |x| per last-axis channel of each tensor, over every position of the feeds (ONNX Runtime)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    for name in tensors:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    values = session.run(tensors, {k: v for k, v in feeds.items() if k in wanted})
    return [np.abs(v.reshape(-1, v.shape[-1])).max(axis=0) for v in values]


def smooth(onnx_path: Path, out_path: Path, feeds: dict[str, np.ndarray], alpha: float) -> list[SmoothedInput]:
    """Write the smoothed fp32 graph to out_path; what was smoothed, channel maxima before/after."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    groups = _groups(graph)
    inits = {i.name: i for i in graph.initializer}
    done = []
    for (tensor, matmuls), act in zip(groups.items(), channel_maxima(onnx_path, list(groups), feeds)):
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in matmuls]
        wmax = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        scale = np.maximum(act, 1e-5) ** alpha / np.maximum(wmax, 1e-5) ** (1 - alpha)
        scale = np.clip(scale, MIN_SCALE, MAX_SCALE).astype(np.float32)
        name = f"{tensor}/smoothed"
        graph.initializer.append(numpy_helper.from_array((1 / scale).astype(np.float32), f"{name}/inverse_scale"))
        first = min(i for i, n in enumerate(graph.node) if tensor in n.input)
        graph.node.insert(first, helper.make_node("Mul", [tensor, f"{name}/inverse_scale"], [name],
                                                  name=f"{name}/Mul"))
        for node, weight in zip(matmuls, weights):
            node.input[0] = name
            inits[node.input[1]].CopyFrom(numpy_helper.from_array((weight * scale[:, None]).astype(np.float32),
                                                                  node.input[1]))
        done.append(SmoothedInput(tensor, tuple(n.name for n in matmuls), float(act.max()),
                                  float((act / scale).max()), float(wmax.max()), float((wmax * scale).max())))
    onnx.save(model, str(out_path))
    return done
