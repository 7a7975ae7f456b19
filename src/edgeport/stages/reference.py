"""The fp32 reference: held-out texts (never the calibration texts; sentence pairs for pair
models) and optional labelled eval data, with the outputs of the fp32 model on both;
``check(runner)`` verifies one artifact against them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeport.calibration.data import Records, builtin_texts
from edgeport.calibration.feeds import batched_feeds
from edgeport.errors import VerificationError
from edgeport.model.load import CLASSIFIER_TASKS, PAIR_TASKS
from edgeport.verify import Runner
from edgeport.verify import VERIFY_BATCH, accuracy, fidelity, label_indices, run_batches


def _task(classifier: bool | str) -> str:
    """A task name (older callers pass ``classifier`` as a bool)."""
    if isinstance(classifier, str):
        return classifier
    return "text-classification" if classifier else "feature-extraction"


@dataclass
class Reference:
    """fp32 outputs at natural lengths are computed once; for a static-shape artifact (which
    truncates texts to its sequence length) the fp32 outputs at that shape are computed on
    first use and kept, so that fidelity measures quantization, not truncation."""

    runner: Runner
    tokenizer: object
    input_names: tuple[str, ...]
    task: str
    heldout: Records
    heldout_out: np.ndarray
    eval: Records | None = None
    eval_labels: list[int] | None = None
    eval_out: np.ndarray | None = None
    _at_shape: dict = field(default_factory=dict)

    @property
    def classifier(self) -> bool:
        return self.task in CLASSIFIER_TASKS

    @property
    def pairs(self) -> bool:
        return self.task in PAIR_TASKS

    def _batches(self, records: Records, batch: int, fixed_length: int | None = None):
        return batched_feeds(self.tokenizer, records.texts, self.input_names, batch, fixed_length=fixed_length,
                             pairs=records.pairs)

    def _reference(self, which: str, shape: tuple[int, int] | None) -> np.ndarray:
        natural = self.heldout_out if which == "heldout" else self.eval_out
        if shape is None:
            return natural
        if (which, shape) not in self._at_shape:
            records = self.heldout if which == "heldout" else self.eval
            self._at_shape[which, shape] = run_batches(self.runner, self._batches(records, VERIFY_BATCH, shape[1]))
        return self._at_shape[which, shape]

    def outputs(self, records: Records | list[str], runner: Runner) -> np.ndarray:
        """The runner's outputs on records (or bare texts): natural lengths, or the artifact's
        one static shape (the last batch padded by repeating its final row, and trimmed after)."""
        if not isinstance(records, Records):
            records = Records("texts", list(records))
        if not runner.fixed_shape:
            return run_batches(runner, self._batches(records, VERIFY_BATCH))
        batch, sequence = runner.fixed_shape
        extra = -len(records.texts) % batch
        padded = Records(records.source, records.texts + [records.texts[-1]] * extra,
                         pairs=None if records.pairs is None else records.pairs + [records.pairs[-1]] * extra)
        out = run_batches(runner, self._batches(padded, batch, sequence))
        return out[:len(records.texts)]

    def check(self, runner: Runner) -> dict:
        shape = runner.fixed_shape
        out = self.outputs(self.heldout, runner)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).reshape(len(out), -1).any(axis=1).sum())
            raise VerificationError(f"the artifact's outputs contain NaN or infinity on {bad} of "
                                    f"{len(out)} held-out examples", hint="the artifact is broken; try another target")
        result = {"fidelity": fidelity(out, self._reference("heldout", shape), self.classifier, self.pairs),
                  "accuracy": None}
        if self.eval is not None:
            eval_out = self.outputs(self.eval, runner)
            result["accuracy"] = accuracy(eval_out, self._reference("eval", shape), self.eval_labels)
        result["runtime"] = runner.info()
        return result


def reference_from(reference_runner: Runner, tokenizer, input_names, classifier: bool | str,
                   eval_records: Records | None, id2label: dict | None) -> Reference:
    """The reference of a model; ``classifier``: its task (a bool: text-classification or not)."""
    task = _task(classifier)
    heldout = builtin_texts("heldout-pairs" if task in PAIR_TASKS else "heldout")
    ref = Reference(reference_runner, tokenizer, tuple(input_names), task, heldout, np.empty(0))
    ref.heldout_out = run_batches(reference_runner, ref._batches(heldout, VERIFY_BATCH))
    if eval_records is not None:
        ref.eval = eval_records
        ref.eval_labels = label_indices(eval_records.labels, id2label, eval_records.source)
        ref.eval_out = run_batches(reference_runner, ref._batches(eval_records, VERIFY_BATCH))
    return ref
