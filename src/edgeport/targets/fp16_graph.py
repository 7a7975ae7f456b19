"""The FP16 pass shared by `tensorrt-fp16` and `amd-fp16`: a strongly-typed FP16 ONNX graph
made from the fp32 one, with FP32 islands where FP16 would lose range or precision.

ONNX Runtime on a CPU casts FP16 nodes back to FP32, so running the FP16 graph here checks
weight rounding, never FP16 arithmetic or overflow. What catches overflow here is the
*activation range report*: the fp32 graph is run on the calibration texts with every float
tensor exposed, and each tensor's largest magnitude is recorded (values beyond FP16's 65504
flagged). The FP32 islands are then

- nodes of precision-sensitive op types (normalizations, reductions, Softmax): LayerNorm
  overflows in FP16 and reductions accumulate its rounding error — onnxconverter-common's
  default block list omits them all;
- nodes that write or read a tensor that reached more than ``65504 / headroom`` on the
  calibration texts (the headroom leaves room for texts the calibration did not see): the
  tensor stays fp32 on both sides, so no Cast to FP16 overflows at the island's edge;
- nodes that read a constant beyond FP16's range (attention-mask fills of -inf or the fp32
  minimum).

The conversion itself is ONNX Runtime's float16 converter (the maintained copy of
onnxconverter-common's) with that node block list and ``keep_io_types``: inputs and outputs
keep the fp32 graph's types, and explicit Casts bound every island, so every tensor has one
declared type (what TensorRT's ``--stronglyTyped`` and MIGraphX need). The result passes the
ONNX checker's full check with shape inference.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

FP16_MAX = 65504.0
# op types kept in fp32 whatever their ranges: normalizations, reductions, Softmax
PRECISION_OPS = ("LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
                 "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Pow", "Sqrt",
                 "Softmax", "LogSoftmax")
_FLOAT_TYPES = (1,)  # TensorProto.FLOAT


@dataclass
class RangeReport:
    """Per float tensor of the fp32 graph: the largest |x| seen on the calibration texts."""

    samples: int
    max_abs: dict[str, float]  # tensor -> max |x| (inf where a tensor held an infinity)
    producer: dict[str, tuple[str, str]]  # tensor -> (node name, op type)
    large_constants: dict[str, float] = field(default_factory=dict)  # constant tensor -> max |x|

    @property
    def beyond_fp16(self) -> list[str]:
        return sorted(name for name, value in self.max_abs.items() if value > FP16_MAX)

    def summary(self, top: int = 12) -> dict:
        """What the manifest keeps: counts, every tensor beyond FP16, the largest ones."""
        largest = sorted(((k, v) for k, v in self.max_abs.items() if v <= FP16_MAX), key=lambda kv: -kv[1])[:top]
        return {
            "samples": self.samples, "tensors": len(self.max_abs), "fp16_max": FP16_MAX,
            "beyond_fp16": [{"tensor": t, "node": self.producer[t][0], "op": self.producer[t][1],
                             "max_abs": _json_float(self.max_abs[t])} for t in self.beyond_fp16],
            "largest_within_fp16": [{"tensor": t, "node": self.producer[t][0], "op": self.producer[t][1],
                         "max_abs": _json_float(v)} for t, v in largest],
            "large_constants": {k: _json_float(v) for k, v in sorted(self.large_constants.items())},
        }


def _json_float(value: float) -> float | str:
    return round(float(value), 4) if np.isfinite(value) else ("inf" if value > 0 else "-inf")


def _constants(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    found = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def range_report(onnx_path: Path, feeds: Iterable[dict[str, np.ndarray]]) -> RangeReport:
    """Run the fp32 graph on ``feeds`` with every float activation exposed as an output."""
    import onnx
    import onnxruntime as ort

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    producer: dict[str, tuple[str, str]] = {}
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        for out in node.output:
            if out and types.get(out) in _FLOAT_TYPES:
                producer[out] = (node.name, node.op_type)
    existing = {o.name for o in model.graph.output}
    for name in producer:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(path))
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = [n for n in names if n in producer]
    max_abs = dict.fromkeys(wanted, 0.0)
    samples = 0
    for batch in feeds:
        values = session.run(wanted, batch)
        samples += next(iter(batch.values())).shape[0]
        for name, value in zip(wanted, values):
            if value.size:
                max_abs[name] = max(max_abs[name], float(np.max(np.abs(value))))
    large = {name: float(np.max(np.abs(array))) for name, array in _constants(model).items()
             if array.dtype.kind == "f" and array.size and float(np.max(np.abs(array))) > FP16_MAX}
    return RangeReport(samples, max_abs, producer, large)


@dataclass(frozen=True)
class Island:
    node: str
    op: str
    kind: str  # precision-op | large-constant | range | budget
    reason: str


def fp32_islands(onnx_path: Path, report: RangeReport, headroom: float = 4.0,
                 extra_nodes: Iterable[str] = ()) -> list[Island]:
    """The nodes to keep in fp32, each with the reason (see the module doc)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    limit = FP16_MAX / headroom
    extra = set(extra_nodes)
    islands = []
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        kind = reason = None
        # a tensor beyond the limit stays fp32 on both sides: its producer and every reader
        peaks = [report.max_abs[t] for t in list(node.output) + list(node.input) if t in report.max_abs]
        big = [i for i in node.input if i in report.large_constants]
        if node.op_type in PRECISION_OPS:
            kind, reason = "precision-op", "normalization, reduction or softmax"
        elif big:
            kind, reason = "large-constant", f"reads a constant of |x| {_json_float(report.large_constants[big[0]])}"
        elif peaks and max(peaks) > limit:
            kind, reason = "range", f"writes or reads max |x| {_json_float(max(peaks))} > {limit:g} (65504 / headroom {headroom:g})"
        elif node.name in extra:
            kind, reason = "budget", "kept in higher precision by the accuracy budget"
        if kind:
            islands.append(Island(node.name, node.op_type, kind, reason))
    return islands


def convert_fp16(onnx_path: Path, out_path: Path, islands: list[Island]) -> None:
    """The strongly-typed FP16 graph: every node but the islands in FP16, io types kept."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(onnx_path))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST),
                                         node_block_list=[island.node for island in islands])
    _topological_sort(converted.graph)  # the converter appends its Casts at the end
    _drop_round_trips(converted)
    onnx.save(converted, str(out_path))


def _drop_round_trips(model) -> None:
    """The converter makes every tensor between two nodes FP16 and wraps the blocked nodes in
    Casts, so two neighbouring FP32 nodes still pass their tensor through FP16 (overflowing
    where it is out of range). Rewire each Cast(fp32 -> fp16) -> Cast(-> fp32) pair to the
    fp32 source and drop the Casts left unused: the islands are FP32 end to end."""
    import onnx

    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(graph.input) + list(graph.output)}
    producer = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}

    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    rename: dict[str, str] = {}
    for node in graph.node:
        src = producer.get(node.input[0]) if node.input else None
        if not (cast_to(node) == onnx.TensorProto.FLOAT and src is not None and cast_to(src) == onnx.TensorProto.FLOAT16
                and types.get(src.input[0]) == onnx.TensorProto.FLOAT):
            continue
        if node.output[0] not in outputs:
            rename[node.output[0]] = src.input[0]
        elif src.input[0] in producer:  # a graph output: its fp32 producer writes it directly
            fp32, out = src.input[0], node.output[0]
            origin = producer[fp32]
            origin.output[list(origin.output).index(fp32)] = out
            node.output[0] = fp32 + "_unused"  # the round trip is left dead
            rename[fp32] = out
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    produced = {o for n in graph.node for o in n.output}
    stale = [v for v in graph.value_info if v.name not in produced]
    for value in stale:
        graph.value_info.remove(value)


def _topological_sort(graph) -> None:
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError(f"the FP16 graph has a cycle or a dangling input at node {pending[0].name}")
        ready_ids = {id(n) for n in ready}
        for node in ready:
            ordered.append(node)
            known.update(node.output)
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


def check_strongly_typed(path: Path) -> dict:
    """ONNX checker (full check, with shape inference) and a declared element type for every
    tensor a node writes: what a strongly-typed TensorRT network and MIGraphX need."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    typed = {vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
             if vi.type.tensor_type.elem_type}
    untyped = [o for n in inferred.graph.node for o in n.output if o and o not in typed]
    if untyped:
        raise ValueError(f"{len(untyped)} tensors have no inferable type, e.g. {untyped[0]}")
    return {"onnx_checker": "full check passed", "shape_inference": "strict, every tensor typed"}


def precision_of(path: Path) -> dict:
    """Counts of nodes computing in fp16 and fp32 (by their float output's type)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inferred.graph.value_info) + list(inferred.graph.output)}
    counts = {"fp16": 0, "fp32": 0}
    for node in inferred.graph.node:
        if node.op_type in ("Constant", "Cast"):
            continue
        kinds = {types.get(o) for o in node.output}
        if onnx.TensorProto.FLOAT16 in kinds:
            counts["fp16"] += 1
        elif onnx.TensorProto.FLOAT in kinds:
            counts["fp32"] += 1
    return counts


@dataclass
class Fp16Graph:
    """What one run of the pass made: the file, its islands, the range report."""

    path: Path
    islands: list[Island]
    report: RangeReport
    checks: dict
    size_ratio: float

    def details(self) -> dict:
        by_kind: dict[str, int] = {}
        for island in self.islands:
            by_kind[island.kind] = by_kind.get(island.kind, 0) + 1
        return {
            "fp32_islands": [{"node": i.node, "op": i.op, "kind": i.kind, "reason": i.reason} for i in self.islands],
            "fp32_island_count": by_kind,
            "range_report": self.report.summary(),
            "structure_checks": self.checks,
            "size_ratio_vs_fp32": round(self.size_ratio, 4),
            "nodes_by_precision": precision_of(self.path),
        }


def fp16_graph(onnx_path: Path, out_path: Path, feeds: Iterable[dict[str, np.ndarray]], headroom: float = 4.0,
               report: RangeReport | None = None, keep_nodes: Iterable[str] = ()) -> Fp16Graph:
    """The whole pass: range report on ``feeds`` (unless given), islands, conversion, checks."""
    report = report if report is not None else range_report(onnx_path, feeds)
    islands = fp32_islands(onnx_path, report, headroom, keep_nodes)
    convert_fp16(onnx_path, out_path, islands)
    checks = check_strongly_typed(out_path)
    ratio = Path(out_path).stat().st_size / Path(onnx_path).stat().st_size
    return Fp16Graph(Path(out_path), islands, report, checks, ratio)
