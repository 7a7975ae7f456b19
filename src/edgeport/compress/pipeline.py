"""Run a recipe's compression passes in order on a loaded model, measuring after each:
parameters, fp32 size, zero share, deflated size, and fidelity/accuracy against the original
model on a fixed probe set. Each pass is a small function: model in, model out (in place)."""

from __future__ import annotations

import copy
import time
import zlib
from collections.abc import Callable

import torch

from edgeport.calibration.data import Records, sample
from edgeport.compress import distill, lowrank, prune, vocab
from edgeport.compress.blocks import require_pass
from edgeport.compress.evaluate import Probe
from edgeport.compress.importance import taylor_grads
from edgeport.model.structure import parameter_count
from edgeport.model.load import LoadedModel
from edgeport.recipe import CompressSpec
from edgeport.ui import UI


class Context:
    """What passes may use besides the model: the untouched teacher, the data, the UI."""

    def __init__(self, teacher: LoadedModel, data: Records, spec: CompressSpec, ui: UI):
        self.teacher, self.data, self.spec, self.ui = teacher, data, spec, ui
        self.origin: list[int] | None = None  # the teacher block each remaining block came from

    def grads(self, loaded: LoadedModel, importance: str) -> dict | None:
        if importance != "taylor":
            return None
        subset = sample(self.data, min(self.spec.importance_samples, len(self.data.texts)), seed=0)
        return taylor_grads(loaded, subset.texts, subset.labels)


def _magnitude(loaded, step, ctx):
    return prune.magnitude_prune(loaded, step.sparsity, step.scope)


def _heads(loaded, step, ctx):
    return prune.prune_heads(loaded, step.keep, ctx.grads(loaded, step.importance))


def _ffn(loaded, step, ctx):
    return prune.prune_ffn(loaded, step.keep, ctx.grads(loaded, step.importance))


def _blocks(loaded, step, ctx):
    details = prune.drop_blocks(loaded, step.keep)
    kept = details["blocks_kept"]
    ctx.origin = [ctx.origin[i] for i in kept] if ctx.origin else kept
    return details


def _vocab(loaded, step, ctx):
    return vocab.prune_vocab(loaded, ctx.data.texts, step.min_count)


def _low_rank(loaded, step, ctx):
    return lowrank.low_rank(loaded, list(step.roles), step.rank, step.energy)


def _distill(loaded, step, ctx):
    return distill.distill(loaded, ctx.teacher, ctx.data.texts, ctx.data.labels, step, ctx.ui, ctx.origin)


PASSES: dict[str, Callable] = {"magnitude": _magnitude, "prune_heads": _heads, "prune_ffn": _ffn,
                               "drop_blocks": _blocks, "prune_vocab": _vocab, "low_rank": _low_rank,
                               "distill": _distill}


def footprint(model: torch.nn.Module) -> dict:
    """Parameters, fp32 size, the zero share of the weights, and the weights' deflated size
    (what sparsity saves in a compressed file; dense runtimes still compute every zero)."""
    tensors = [t.detach() for t in model.state_dict().values()]
    raw = sum(t.numel() * t.element_size() for t in tensors)
    floats = [t for t in tensors if t.is_floating_point()]
    zeros = sum(int((t == 0).sum()) for t in floats)
    deflated = sum(len(zlib.compress(t.contiguous().numpy().tobytes(), 1)) for t in tensors)
    return {"parameters": parameter_count(model), "size_mb": round(raw / 1e6, 3),
            "zeros": round(zeros / max(1, sum(t.numel() for t in floats)), 4), "deflated_mb": round(deflated / 1e6, 3)}


def compress_model(loaded: LoadedModel, spec: CompressSpec, data: Records, probe: Probe, ui: UI) -> dict:
    """Apply ``spec.steps`` to ``loaded`` (in place); the report of each pass."""
    for step in spec.steps:  # every pass the family cannot take is refused before any work
        require_pass(loaded, step.op)
    ctx = Context(copy.deepcopy(loaded), data, spec, ui)
    before = {**footprint(loaded.model), **probe.measure(loaded)}
    passes = []
    for number, step in enumerate(spec.steps, 1):
        started = time.perf_counter()
        with ui.step(f"compress {number}/{len(spec.steps)}: {step.op}"):
            details = PASSES[step.op](loaded, step, ctx)
            loaded.model.eval()
            after = {**footprint(loaded.model), **probe.measure(loaded)}
        passes.append({"op": step.op, "options": step.model_dump(exclude={"op"}), "details": details, **after,
                       "seconds": round(time.perf_counter() - started, 1)})
        ui.info(f"{step.op}: {after['parameters'] / 1e6:.2f}M parameters, {after['size_mb']:.1f} MB, "
                + ", ".join(f"{k} {after[k]}" for k in ("mean_cosine", "agreement", "accuracy") if k in after))
    return {"before": before, "passes": passes, "probe": {"texts": len(probe.texts),
                                                          "labelled": probe.labels is not None}}
