"""ONNX from a loaded model: export with dynamic batch and sequence axes, check, prove parity.

The TorchScript-based exporter (``dynamo=False``) is used: it exports every family with
parity (each export records its max abs error in onnx/manifest.json), and ONNX Runtime ran
its graph fastest on CPU when the exporters were compared.
Parity is checked against PyTorch on several shapes; a failure is an error, not a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgeport.errors import CorruptOnnxError, ParityError
from edgeport.model.load import LoadedModel
from edgeport.model.load import TOKEN_TASKS
from edgeport.model.wrappers import OUTPUT_NAMES, stacked, task_module
from edgeport.verify import cosine_rows

DEFAULT_OPSET = 17
PARITY_SHAPES = ((1, 8), (2, 33), (3, 128))
PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-3


def random_feeds(input_names, vocab_size: int, batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token feeds of a given shape with ragged attention masks (padding at the end)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, max(6, vocab_size - 1), size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    for row in range(1, batch):
        mask[row, rng.integers(max(1, seq // 2), seq + 1):] = 0
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: feeds[name] for name in input_names}


def torch_outputs(loaded: LoadedModel, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    module = task_module(loaded)
    with torch.inference_mode():
        return stacked(module(**{k: torch.from_numpy(v) for k, v in feeds.items()})).numpy()


def export_onnx(loaded: LoadedModel, out_path: Path, opset: int = DEFAULT_OPSET) -> dict:
    """Export to ``out_path``, run the ONNX checker and the parity check; return parity figures."""
    import torch

    names = list(loaded.family.inputs)
    outputs = list(OUTPUT_NAMES[loaded.task])
    example = random_feeds(names, loaded.model.config.vocab_size, batch=2, seq=16)
    out_axes = {0: "batch", 1: "sequence"} if loaded.task in TOKEN_TASKS else {0: "batch"}
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {o: out_axes for o in outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            task_module(loaded),
            tuple(torch.from_numpy(example[n]) for n in names),
            str(out_path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    check_onnx(out_path)
    return parity(loaded, out_path)


def check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise CorruptOnnxError(
            f"'{path}' is not a valid ONNX model: {str(exc).splitlines()[0]}",
            hint="re-export it, or check that the file was copied completely",
        ) from exc


def parity(loaded: LoadedModel, onnx_path: Path) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst_abs, worst_cos, rows = 0.0, 1.0, []
    for batch, seq in PARITY_SHAPES:
        feeds = random_feeds(loaded.family.inputs, loaded.model.config.vocab_size, batch, seq, seed=seq)
        ref = torch_outputs(loaded, feeds)
        got = session.run(None, feeds)
        got = np.stack(got, axis=-1) if len(got) > 1 else got[0]
        max_abs = float(np.max(np.abs(got - ref)))
        cos = float(np.min(cosine_rows(got, ref)))
        rows.append({"batch": batch, "sequence": seq, "max_abs": max_abs, "min_cosine": cos})
        worst_abs, worst_cos = max(worst_abs, max_abs), min(worst_cos, cos)
        if max_abs > PARITY_ATOL + PARITY_RTOL * float(np.max(np.abs(ref))):
            raise ParityError(
                f"ONNX output differs from PyTorch at batch {batch} x sequence {seq}: "
                f"max abs error {max_abs:.3g}",
                hint="try another --opset, or report the model with --debug output",
            )
    return {"max_abs": worst_abs, "min_cosine": worst_cos, "shapes": rows}

