"""Host-side checks of an ONNX graph meant for TensorRT's ONNX parser, per TensorRT version.

TensorRT 10 builds with ``--stronglyTyped`` (TensorRT 11 knows nothing else): INT8 only from
explicit Q/DQ, FP16 only from explicit casts. What the parser of a version accepts is a rule
table: the opset ceiling, the operator types, and for Q/DQ symmetric (zero point 0) constant
scales, no dynamic or integer-operator quantization. The placement rules (TensorRT's developer
guide, as NVIDIA ModelOpt implements them) are checked on the QDQ graph: Q/DQ on the inputs of
the weighted MatMuls, none feeding LayerNorm, Softmax or Erf.

The operator table is the parser's support matrix (onnx-tensorrt ``docs/operators.md``) for
the ops a transformer encoder uses and their neighbours; an op outside it fails the check with
its name, which is what the parser on the device would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeport.errors import VerificationError

_PARSER_OPS_10 = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GroupNormalization GRU HardSigmoid Identity If
InstanceNormalization IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg NonZero Not OneHot Or Pad PRelu Pow QuantizeLinear
Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize RNN Round Scan ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh
Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Unsqueeze Where Xor
""".split())
FORBIDDEN_QUANT_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv",
                       "QLinearAdd", "QLinearMul", "QGemm", "QAttention")
NO_QDQ_FEEDING = ("LayerNormalization", "Softmax", "Erf")


@dataclass(frozen=True)
class TrtRules:
    version: str
    jetpack: str
    max_opset: int
    ops: frozenset[str]
    int64: str  # how the parser takes int64 tensors


RULES: dict[str, TrtRules] = {
    "10.3": TrtRules("10.3", "JetPack 6.x (Jetson Orin)", 20, _PARSER_OPS_10,
                     "native INT64 tensors (TensorRT >= 10.0): token inputs stay int64, nothing to narrow"),
}


def _load(path: Path):
    import onnx

    return onnx.load(str(path))


def _default_opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def rule_table_check(path: Path, rules: TrtRules) -> dict:
    """Opset ceiling, parser ops, quantization ops, Q/DQ symmetric with constant scales,
    int64 inputs. Raises VerificationError naming the first rule broken."""
    import numpy as np
    from onnx import numpy_helper

    model = _load(path)
    graph = model.graph
    opset = _default_opset(model)
    problems = []
    if opset > rules.max_opset:
        problems.append(f"opset {opset} > {rules.max_opset}, the ceiling of TensorRT {rules.version}'s parser")
    types = sorted({n.op_type for n in graph.node})
    unknown = [t for t in types if t not in rules.ops]
    if unknown:
        problems.append(f"op types TensorRT {rules.version}'s parser lacks: {', '.join(unknown)}")
    forbidden = [t for t in types if t in FORBIDDEN_QUANT_OPS]
    if forbidden:
        problems.append(f"dynamic or integer-operator quantization ({', '.join(forbidden)}): TensorRT takes Q/DQ only")
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = node.attribute[0].t
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for node in qdq:
        scale = node.input[1]
        if scale not in constants:
            problems.append(f"{node.name}: scale '{scale}' is not a constant")
        if len(node.input) > 2 and node.input[2]:
            zero = node.input[2]
            if zero not in constants:
                problems.append(f"{node.name}: zero point '{zero}' is not a constant")
            elif np.any(numpy_helper.to_array(constants[zero]) != 0):
                problems.append(f"{node.name}: zero point is not 0 (asymmetric)")
    int64_inputs = [i.name for i in graph.input if i.type.tensor_type.elem_type == 7]
    if problems:
        raise VerificationError(f"the graph breaks TensorRT {rules.version}'s rules: {problems[0]}"
                                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                                hint="export with --opset 17 (the default); report the op if it should be supported")
    return {"trt_version": rules.version, "jetpack": rules.jetpack, "opset": opset, "max_opset": rules.max_opset,
            "op_types": len(types), "qdq_nodes": len(qdq), "qdq": "symmetric, constant scales" if qdq else "none",
            "quantization_ops_refused": list(FORBIDDEN_QUANT_OPS), "int64_inputs": int64_inputs,
            "int64": rules.int64, "result": "passed"}


def _weight_reader(graph):
    """node -> whether a weight (initializer or Constant) reaches one of its first two inputs,
    directly or through DequantizeLinear / QuantizeLinear / Cast / Transpose."""
    producer = {o: n for n in graph.node for o in n.output}
    weights = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}

    def from_weight(name: str, depth: int = 0) -> bool:
        if name in weights:
            return True
        node = producer.get(name)
        if node is None or depth > 4 or node.op_type not in ("DequantizeLinear", "QuantizeLinear", "Cast", "Transpose"):
            return False
        return from_weight(node.input[0], depth + 1)

    return lambda node: any(from_weight(name) for name in node.input[:2])


def attention_core(path: Path) -> list[str]:
    """MatMuls of two activations (QK^T and the probabilities times V): the attention core that
    TensorRT's placement leaves unquantized."""
    graph = _load(path).graph
    weighted = _weight_reader(graph)
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and not weighted(n)]


def per_sequence_heads(path: Path) -> list[str]:
    """Weighted Gemm nodes: in the exported encoders these act on one row per sequence (the
    pooler and the classifier of a classification head), GEMVs that carry a negligible share of
    the MACs; NVIDIA ModelOpt leaves such nodes unquantized, and so does the target, explicitly."""
    graph = _load(path).graph
    weighted = _weight_reader(graph)
    return [n.name for n in graph.node if n.op_type == "Gemm" and weighted(n)]


def placement_check(path: Path, excluded: list[str]) -> dict:
    """Q/DQ placement of an INT8 graph: both inputs of every weighted MatMul/Gemm not kept out
    come from DequantizeLinear; the attention core (MatMuls of two activations) has none; no
    DequantizeLinear feeds LayerNorm, Softmax or Erf."""
    graph = _load(path).graph
    producer = {o: n for n in graph.node for o in n.output}
    weighted = _weight_reader(graph)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def from_dq(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    quantized, unquantized, core_quantized = [], [], []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        if weighted(node):
            (quantized if all(from_dq(i) for i in node.input[:2]) else unquantized).append(node.name)
        elif any(from_dq(i) for i in node.input[:2]):
            core_quantized.append(node.name)
    wrong_unquantized = [n for n in unquantized if n not in set(excluded)]
    feeding = [c.name for n in graph.node if n.op_type == "DequantizeLinear"
               for c in consumers.get(n.output[0], []) if c.op_type in NO_QDQ_FEEDING]
    broken = []
    if wrong_unquantized:
        broken.append(f"{len(wrong_unquantized)} weighted MatMuls meant to be INT8 lack Q/DQ inputs "
                      f"(e.g. {wrong_unquantized[0]})")
    if core_quantized:
        broken.append(f"Q/DQ on {len(core_quantized)} attention-core MatMuls (e.g. {core_quantized[0]})")
    if feeding:
        broken.append(f"Q/DQ feeds {len(feeding)} LayerNorm/Softmax/Erf nodes (e.g. {feeding[0]})")
    if broken:
        raise VerificationError(f"INT8 placement rule broken: {broken[0]}")
    return {"int8_matmuls": len(quantized), "kept_out": len(unquantized), "attention_core_quantized": 0,
            "dq_feeding_layernorm_softmax_erf": 0, "result": "passed", "int8_matmul_nodes": quantized}
