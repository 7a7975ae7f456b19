"""Stages `model` and `onnx`: copy the model into the run folder, export and check ONNX.
Both are cached by a content hash of their inputs, options and tool versions."""

from __future__ import annotations

from pathlib import Path

from edgeport.artifact import ArtifactManifest
from edgeport.model.load import LoadedModel, model_from_path, path_from_ref, save_model, structure_to_record
from edgeport.exporter.onnx_export import export_onnx
from edgeport.runs import (code_version, MANIFEST, RunDir, atomic_dir, cache_key, hash_path, mark_stage, read_json,
                           stage_is_current, tool_versions, write_json)


def model_info(ref: str, loaded: LoadedModel, model_dir: Path) -> dict:
    weights = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    return {
        "ref": str(ref), "task": loaded.task, "family": loaded.family.name,
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        "size_mb": round(weights / 1e6, 3), "sha256": hash_path(model_dir),
    }


PROGRAM = "program.pt2"


def export_program(loaded: LoadedModel, path: Path) -> str:
    """The task module as a torch.export program with dynamic batch and sequence axes: what
    the device agent loads for a compressed model, whose modules plain transformers cannot
    rebuild (the agent imports nothing of edgeport). Returns the file name."""
    import torch

    from edgeport.model.wrappers import task_module

    module = task_module(loaded)
    example = {name: torch.ones((2, 16), dtype=torch.long) for name in loaded.family.inputs}
    longest = int(getattr(loaded.model.config, "max_position_embeddings", 512) or 512)
    batch, sequence = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("sequence", min=2, max=longest)
    dynamic = {name: {0: batch, 1: sequence} for name in loaded.family.inputs}
    program = torch.export.export(module, args=(), kwargs=example, dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
    return path.name


def prepare_model(run: RunDir, ref: str, trust_pickle: bool = False, task: str | None = None
                  ) -> tuple[LoadedModel, bool]:
    """Load the model from its reference (``task``: an override of the detected task) and
    keep a copy in RUN_DIR/model (cached)."""
    source = path_from_ref(ref)
    loaded = model_from_path(source, trust_pickle, task)
    key = cache_key(stage="model", source=hash_path(source), task=loaded.task, edgeport=code_version())
    if stage_is_current(run.model_dir, key):
        return loaded, True
    with atomic_dir(run.model_dir) as tmp:
        save_model(loaded, tmp)
        # the model folder is itself profilable by the device agent (the PyTorch fp32 baseline);
        # a compressed model also travels as an exported program the agent loads with torch alone
        files = [export_program(loaded, tmp / PROGRAM)] if structure_to_record(loaded.model, loaded.task) else []
        ArtifactManifest(target="pytorch-fp32", format="pytorch", runtime="torch", files=files, task=loaded.task,
                         family=loaded.family.name, inputs=list(loaded.family.inputs),
                         vocab_size=loaded.model.config.vocab_size).write(tmp)
        mark_stage(tmp, key)
    return loaded, False


def prepare_onnx(run: RunDir, loaded: LoadedModel, opset: int) -> tuple[dict, bool]:
    """Export RUN_DIR/onnx/model.onnx with its parity figures (cached)."""
    versions = tool_versions(("torch", "transformers", "onnx", "onnxruntime"))
    key = cache_key(stage="onnx", model=hash_path(run.model_dir), opset=opset, tools=versions, edgeport=code_version())
    if stage_is_current(run.onnx_dir, key):
        return read_json(run.onnx_dir / MANIFEST), True
    with atomic_dir(run.onnx_dir) as tmp:
        parity = export_onnx(loaded, tmp / "model.onnx", opset)
        manifest = {"opset": opset, "inputs": list(loaded.family.inputs), "task": loaded.task,
                    "parity": parity, "tool_versions": versions}
        write_json(tmp / MANIFEST, manifest)
        mark_stage(tmp, key)
    return manifest, False
