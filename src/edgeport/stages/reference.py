"""The fp32 reference: held-out texts (never the calibration texts) and optional labelled
eval data, with the outputs of the fp32 model on both; ``check(runner)`` verifies one
artifact against them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeport.calibration.data import Records, builtin_texts
from edgeport.calibration.feeds import batched_feeds
from edgeport.errors import DataFileError
from edgeport.targets.base import Runner
from edgeport.verify import VERIFY_BATCH, LabelMap, accuracy, fidelity, run_batches


@dataclass
class Reference:
    tokenizer: object
    input_names: tuple[str, ...]
    classifier: bool
    heldout: Records
    heldout_out: np.ndarray
    eval: Records | None = None
    eval_labels: list[int] | None = None
    eval_out: np.ndarray | None = None

    def _batches(self, texts, runner: Runner):
        fixed = runner.fixed_shape
        size = fixed[0] if fixed else VERIFY_BATCH
        return batched_feeds(self.tokenizer, texts, self.input_names, size, fixed_length=fixed[1] if fixed else None)

    def check(self, runner: Runner) -> dict:
        out = run_batches(runner, self._batches(self.heldout.texts, runner))
        result = {"fidelity": fidelity(out, self.heldout_out, self.classifier), "accuracy": None}
        if self.eval is not None:
            eval_out = run_batches(runner, self._batches(self.eval.texts, runner))
            result["accuracy"] = accuracy(eval_out, self.eval_out, self.eval_labels)
        result["runtime"] = runner.info()
        return result


def _labels(records: Records, id2label: dict[int, str]) -> list[int]:
    mapping = LabelMap({int(k): v for k, v in id2label.items()})
    try:
        return [mapping.index(label) for label in records.labels]
    except ValueError as exc:
        raise DataFileError(
            f"{records.source}: label '{exc}' is not a class of the model",
            hint=f"the model's labels: {', '.join(map(str, id2label.values()))} (or their indices)",
        ) from exc


def reference_from(reference_runner: Runner, tokenizer, input_names, classifier: bool,
                   eval_records: Records | None, id2label: dict | None) -> Reference:
    heldout = builtin_texts("heldout")
    batches = batched_feeds(tokenizer, heldout.texts, input_names, VERIFY_BATCH)
    ref = Reference(tokenizer, tuple(input_names), classifier, heldout, run_batches(reference_runner, batches))
    if eval_records is not None:
        ref.eval = eval_records
        ref.eval_labels = _labels(eval_records, id2label or {})
        ref.eval_out = run_batches(reference_runner, batched_feeds(tokenizer, eval_records.texts, input_names, VERIFY_BATCH))
    return ref
