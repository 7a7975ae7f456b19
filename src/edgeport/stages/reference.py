"""The fp32 reference: held-out texts (never the calibration texts) and optional labelled
eval data, with the outputs of the fp32 model on both; ``check(runner)`` verifies one
artifact against them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeport.calibration.data import Records, builtin_texts
from edgeport.calibration.feeds import batched_feeds
from edgeport.verify import Runner
from edgeport.verify import VERIFY_BATCH, accuracy, fidelity, label_indices, run_batches


@dataclass
class Reference:
    """fp32 outputs at natural lengths are computed once; for a static-shape artifact (which
    truncates texts to its sequence length) the fp32 outputs at that shape are computed on
    first use and kept, so that fidelity measures quantization, not truncation."""

    runner: Runner
    tokenizer: object
    input_names: tuple[str, ...]
    classifier: bool
    heldout: Records
    heldout_out: np.ndarray
    eval: Records | None = None
    eval_labels: list[int] | None = None
    eval_out: np.ndarray | None = None
    _at_shape: dict = field(default_factory=dict)

    def _reference(self, which: str, shape: tuple[int, int] | None) -> np.ndarray:
        natural = self.heldout_out if which == "heldout" else self.eval_out
        if shape is None:
            return natural
        if (which, shape) not in self._at_shape:
            texts = self.heldout.texts if which == "heldout" else self.eval.texts
            self._at_shape[which, shape] = run_batches(self.runner, batched_feeds(
                self.tokenizer, texts, self.input_names, VERIFY_BATCH, fixed_length=shape[1]))
        return self._at_shape[which, shape]

    def outputs(self, texts: list[str], runner: Runner) -> np.ndarray:
        """The runner's outputs on texts: natural lengths, or the artifact's one static shape
        (the last batch padded by repeating its final text, and trimmed after)."""
        if not runner.fixed_shape:
            return run_batches(runner, batched_feeds(self.tokenizer, texts, self.input_names, VERIFY_BATCH))
        batch, sequence = runner.fixed_shape
        padded = list(texts) + [texts[-1]] * (-len(texts) % batch)
        out = run_batches(runner, batched_feeds(self.tokenizer, padded, self.input_names, batch, fixed_length=sequence))
        return out[:len(texts)]

    def check(self, runner: Runner) -> dict:
        shape = runner.fixed_shape
        out = self.outputs(self.heldout.texts, runner)
        result = {"fidelity": fidelity(out, self._reference("heldout", shape), self.classifier), "accuracy": None}
        if self.eval is not None:
            eval_out = self.outputs(self.eval.texts, runner)
            result["accuracy"] = accuracy(eval_out, self._reference("eval", shape), self.eval_labels)
        result["runtime"] = runner.info()
        return result


def reference_from(reference_runner: Runner, tokenizer, input_names, classifier: bool,
                   eval_records: Records | None, id2label: dict | None) -> Reference:
    heldout = builtin_texts("heldout")
    batches = batched_feeds(tokenizer, heldout.texts, input_names, VERIFY_BATCH)
    ref = Reference(reference_runner, tokenizer, tuple(input_names), classifier, heldout,
                    run_batches(reference_runner, batches))
    if eval_records is not None:
        ref.eval = eval_records
        ref.eval_labels = label_indices(eval_records.labels, id2label, eval_records.source)
        ref.eval_out = run_batches(reference_runner, batched_feeds(tokenizer, eval_records.texts, input_names, VERIFY_BATCH))
    return ref
