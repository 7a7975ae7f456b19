"""Stage `compress`: the recipe's passes on the PyTorch model, saved to RUN_DIR/compressed
(a model folder edgeport and the targets load like any other) with compression.json, the
report of every pass. Cached by the model, the passes, their data and edgeport's version."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeport.calibration.data import Records, builtin_texts, records_from_spec
from edgeport.errors import UsageError
from edgeport.model.load import model_from_path, path_from_ref, save_model
from edgeport.recipe import Recipe
from edgeport.runs import RunDir, atomic_dir, cache_key, code_version, hash_path, mark_stage, read_json, \
    stage_is_current, write_json
from edgeport.ui import UI

REPORT = "compression.json"


def compressed_dir(run: RunDir) -> Path:
    return run.root / "compressed"


def _data(recipe: Recipe) -> Records:
    spec = recipe.compress.data
    if spec is None:
        return builtin_texts("calibration")
    return records_from_spec(spec)


def _probe_records(recipe: Recipe) -> Records:
    """Labelled eval data when the recipe has it (reported only, never trained on), else the
    built-in held-out texts."""
    if recipe.eval is not None:
        return records_from_spec(recipe.eval, need_labels=True)
    return builtin_texts("heldout")


def _content(records: Records) -> str:
    """What decides the stage's outcome about a set of records: its rows (a split of a file is
    not the file)."""
    if records.source.startswith("builtin"):
        return records.source
    return cache_key(texts=records.texts, labels=records.labels, pairs=records.pairs)


def _reload_error(folder: Path, loaded, texts: list[str]) -> float:
    """Largest output difference between the model in memory and the one saved."""
    from edgeport.compress.evaluate import outputs_of

    again = model_from_path(folder)
    return float(np.abs(outputs_of(again, texts) - outputs_of(loaded, texts)).max())


def compress_stage(run: RunDir, recipe: Recipe, ui: UI) -> tuple[Path, dict, bool]:
    """Compress ``recipe.model`` into RUN_DIR/compressed; (folder, report, cached)."""
    from edgeport.compress.evaluate import probe_from
    from edgeport.compress.pipeline import compress_model

    if recipe.compress is None:
        raise UsageError("the recipe has no `compress:` section", hint="see recipes/sst2-tuned.yaml")
    source = path_from_ref(recipe.model)
    data, probe_records = _data(recipe), _probe_records(recipe)
    key = cache_key(stage="compress", source=hash_path(source), spec=recipe.compress.model_dump(mode="json"),
                    data=_content(data), probe=_content(probe_records), edgeport=code_version())
    out = compressed_dir(run)
    if stage_is_current(out, key):
        return out, read_json(out / REPORT), True
    loaded = model_from_path(source, recipe.trust_pickle)
    if recipe.eval is not None and loaded.task != "text-classification":
        raise UsageError("eval data measures classifiers; this model gives embeddings", hint="drop eval")
    with ui.step("measuring the original model"):
        probe = probe_from(loaded, probe_records.texts, probe_records.labels)
    report = compress_model(loaded, recipe.compress, data, probe, ui)
    report["source"] = str(recipe.model)
    with atomic_dir(out) as tmp:
        save_model(loaded, tmp)
        report["reload_max_abs"] = _reload_error(tmp, loaded, probe_records.texts[:16])
        write_json(tmp / REPORT, report)
        mark_stage(tmp, key)
    return out, report, False
