"""The fp32 reference on two disjoint sets of texts: the *selection* set, on which the
accuracy budget makes every choice (sensitivity ranking, fallback layers, refinement), and
the *report* set, which grades the chosen artifact and played no part in choosing it. Each set
holds held-out texts (fidelity; sentence pairs for pair models) and, with labelled eval data,
labelled texts (accuracy). Calibration texts are disjoint from both.

- Held-out texts: the built-in ``selection`` set chooses, the built-in ``heldout`` set reports
  (pair models: the built-in held-out pairs, split in two halves).
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
from edgeport.errors import VerificationError
from edgeport.model.load import CLASSIFIER_TASKS, PAIR_TASKS, TOKEN_TASKS
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
    task: str
    selection: Evidence
    report: Evidence

    @property
    def classifier(self) -> bool:
        return self.task in CLASSIFIER_TASKS

    @property
    def pairs(self) -> bool:
        return self.task in PAIR_TASKS

    def key(self) -> dict:
        """What the reference is made of, for stage cache keys."""
        def part(e: Evidence):
            return [e.heldout.source, len(e.heldout.records.texts),
                    None if e.eval is None else [e.eval.source, len(e.eval.records.texts)]]
        return {"task": self.task, "selection": part(self.selection), "report": part(self.report)}

    def _batches(self, records: Records, batch: int, fixed_length: int | None = None):
        return batched_feeds(self.tokenizer, records.texts, self.input_names, batch, fixed_length=fixed_length,
                             pairs=records.pairs)

    def _fp32(self, texts: TextSet, shape: tuple[int, int] | None) -> np.ndarray:
        if shape is None:
            return texts.outputs
        if shape not in texts.at_shape:
            texts.at_shape[shape] = run_batches(self.runner, self._batches(texts.records, VERIFY_BATCH, shape[1]))
        return texts.at_shape[shape]

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

    def check(self, runner: Runner, side: Side = "report") -> Check:
        evidence = self.selection if side == "selection" else self.report
        shape = runner.fixed_shape
        out = self.outputs(evidence.heldout.records, runner)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).reshape(len(out), -1).any(axis=1).sum())
            raise VerificationError(f"the artifact's outputs contain NaN or infinity on {bad} of "
                                    f"{len(out)} held-out examples", hint="the artifact is broken; try another target")
        fid = fidelity(out, self._fp32(evidence.heldout, shape), self.classifier, evidence.heldout.source, self.pairs)
        acc = None
        if evidence.eval is not None:
            eval_out = self.outputs(evidence.eval.records, runner)
            acc = accuracy(eval_out, self._fp32(evidence.eval, shape), evidence.eval.labels, evidence.eval.source)
        return Check(fidelity=fid, accuracy=acc, runtime=runner.info())


def _task(classifier: bool | str) -> str:
    """A task name (callers may pass ``classifier`` as a bool)."""
    if isinstance(classifier, str):
        return classifier
    return "text-classification" if classifier else "feature-extraction"


def _heldout_sets(task: str) -> tuple[Records, Records]:
    """(selection, report) held-out texts: two disjoint built-in sets; for pair models the
    built-in held-out pairs, halved."""
    if task not in PAIR_TASKS:
        return builtin_texts("selection"), builtin_texts("heldout")
    pairs = builtin_texts("heldout-pairs")
    half = len(pairs.texts) // 2

    def part(rows: slice, name: str) -> Records:
        return Records(f"{pairs.source} ({name} half)", pairs.texts[rows], pairs=pairs.pairs[rows])

    return part(slice(0, half), "selection"), part(slice(half, None), "report")


def reference_from(reference_runner: Runner, tokenizer, input_names, classifier: bool | str,
                   eval_records: Records | None, id2label: dict | None,
                   selection_records: Records | None = None) -> Reference:
    """The fp32 reference of a model (``classifier``: its task, or a bool for text
    classification). ``selection_records`` (``--budget-data``) choose and the whole eval file
    reports; without them a labelled eval file is split in half (stratified, seeded)."""
    task = _task(classifier)
    ref = Reference(reference_runner, tokenizer, tuple(input_names), task, None, None)

    def make(records: Records) -> TextSet:
        outputs = run_batches(reference_runner, ref._batches(records, VERIFY_BATCH))
        labels = label_indices(records.labels, id2label, records.source) if records.labels is not None else None
        return TextSet(records, outputs, labels)

    chooser, grader = _heldout_sets(task)
    ref.selection, ref.report = Evidence(make(chooser)), Evidence(make(grader))
    if eval_records is not None:
        if selection_records is None:
            selection_records, eval_records = split_for_selection(eval_records)
        ref.selection.eval, ref.report.eval = make(selection_records), make(eval_records)
    return ref


def reference_of(source, inputs) -> Reference:
    """The reference of a run's source (``stages.source.Source``) for its inputs
    (``stages.source.Inputs``: eval and budget data); the per-token tasks' is a
    ``stages.token_reference.TokenReference``."""
    if source.task in TOKEN_TASKS:
        from edgeport.stages.token_reference import token_reference_from

        return token_reference_from(source.reference_runner, source.tokenizer, source.input_names, source.task,
                                    inputs.eval, source.id2label, inputs.budget_data)
    return reference_from(source.reference_runner, source.tokenizer, source.input_names, source.task,
                          inputs.eval, source.id2label, inputs.budget_data)
