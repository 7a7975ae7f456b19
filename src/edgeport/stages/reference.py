"""The fp32 reference on two disjoint sets of texts: the *selection* set, on which the
accuracy budget makes every choice (sensitivity ranking, fallback layers, refinement), and
the *report* set, which grades the chosen artifact and played no part in choosing it. Each set
holds held-out texts (fidelity) and, with labelled eval data, labelled texts (accuracy).
Calibration texts are disjoint from both.

- Held-out texts: the built-in ``selection`` set chooses, the built-in ``heldout`` set reports.
- Labelled data (``--eval``): with ``--budget-data`` that file chooses and the eval file
  reports, whole; otherwise the eval file is split in half, label-stratified and seeded
  (``calibration.data.split_for_selection``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edgeport.calibration.data import Records, builtin_texts, split_for_selection
from edgeport.calibration.feeds import batched_feeds
from edgeport.verify import VERIFY_BATCH, Check, Runner, accuracy, fidelity, label_indices, run_batches

Side = Literal["selection", "report"]


@dataclass
class TextSet:
    """Texts (with class indices when labelled) and the fp32 outputs on them at natural
    lengths; for a static-shape artifact (which truncates texts to its sequence length) the
    fp32 outputs at that shape are computed on first use and kept, so that fidelity measures
    quantization, not truncation."""

    records: Records
    outputs: np.ndarray
    labels: list[int] | None = None
    at_shape: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.records.source


@dataclass
class Evidence:
    heldout: TextSet
    eval: TextSet | None = None

    def summary(self) -> dict:
        """What the budget chose on: the labelled rows when there are any (their label
        agreement and accuracy decide), else the held-out texts; the held-out texts also
        count in the ranking by cosine."""
        main = self.eval or self.heldout
        return {"source": main.source, "samples": len(main.records.texts),
                "heldout": self.heldout.source, "heldout_samples": len(self.heldout.records.texts)}


@dataclass
class Reference:
    runner: Runner
    tokenizer: object
    input_names: tuple[str, ...]
    classifier: bool
    selection: Evidence
    report: Evidence

    def key(self) -> dict:
        """What the reference is made of, for stage cache keys."""
        def part(e: Evidence):
            return [e.heldout.source, len(e.heldout.records.texts),
                    None if e.eval is None else [e.eval.source, len(e.eval.records.texts)]]
        return {"selection": part(self.selection), "report": part(self.report)}

    def _fp32(self, texts: TextSet, shape: tuple[int, int] | None) -> np.ndarray:
        if shape is None:
            return texts.outputs
        if shape not in texts.at_shape:
            texts.at_shape[shape] = run_batches(self.runner, batched_feeds(
                self.tokenizer, texts.records.texts, self.input_names, VERIFY_BATCH, fixed_length=shape[1]))
        return texts.at_shape[shape]

    def outputs(self, texts: list[str], runner: Runner) -> np.ndarray:
        """The runner's outputs on texts: natural lengths, or the artifact's one static shape
        (the last batch padded by repeating its final text, and trimmed after)."""
        if not runner.fixed_shape:
            return run_batches(runner, batched_feeds(self.tokenizer, texts, self.input_names, VERIFY_BATCH))
        batch, sequence = runner.fixed_shape
        padded = list(texts) + [texts[-1]] * (-len(texts) % batch)
        out = run_batches(runner, batched_feeds(self.tokenizer, padded, self.input_names, batch, fixed_length=sequence))
        return out[:len(texts)]

    def check(self, runner: Runner, side: Side = "report") -> Check:
        evidence = self.selection if side == "selection" else self.report
        shape = runner.fixed_shape
        out = self.outputs(evidence.heldout.records.texts, runner)
        fid = fidelity(out, self._fp32(evidence.heldout, shape), self.classifier, evidence.heldout.source)
        acc = None
        if evidence.eval is not None:
            eval_out = self.outputs(evidence.eval.records.texts, runner)
            acc = accuracy(eval_out, self._fp32(evidence.eval, shape), evidence.eval.labels, evidence.eval.source)
        return Check(fidelity=fid, accuracy=acc, runtime=runner.info())


def _text_set(runner: Runner, tokenizer, input_names, records: Records, id2label: dict | None) -> TextSet:
    outputs = run_batches(runner, batched_feeds(tokenizer, records.texts, input_names, VERIFY_BATCH))
    labels = label_indices(records.labels, id2label, records.source) if records.labels is not None else None
    return TextSet(records, outputs, labels)


def reference_from(reference_runner: Runner, tokenizer, input_names, classifier: bool,
                   eval_records: Records | None, id2label: dict | None,
                   selection_records: Records | None = None) -> Reference:
    """The fp32 reference. ``selection_records`` (``--budget-data``) choose and the whole eval
    file reports; without them a labelled eval file is split in half (stratified, seeded)."""
    def make(records: Records) -> TextSet:
        return _text_set(reference_runner, tokenizer, input_names, records, id2label)

    selection = Evidence(make(builtin_texts("selection")))
    report = Evidence(make(builtin_texts("heldout")))
    if eval_records is not None:
        if selection_records is None:
            selection_records, eval_records = split_for_selection(eval_records)
        selection.eval, report.eval = make(selection_records), make(eval_records)
    return Reference(reference_runner, tokenizer, tuple(input_names), classifier, selection, report)


def reference_of(source, inputs) -> Reference:
    """The reference of a run's source (``stages.source.Source``) for its inputs
    (``stages.source.Inputs``: eval and budget data)."""
    return reference_from(source.reference_runner, source.tokenizer, source.input_names,
                          source.task == "text-classification", inputs.eval, source.id2label, inputs.budget_data)
