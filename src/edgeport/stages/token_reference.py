"""The fp32 reference of the per-token tasks (token classification, question answering), on
the same two disjoint sides as every other task (``stages.reference``): the budget chooses on
``selection``, the figures are reported on ``report``.

- Held-out data: a tagger reads the built-in ``selection`` / ``heldout`` texts; a QA reader
  the built-in synthetic ``selection-qa`` / ``heldout-qa`` questions.
- Labelled data (``--eval``): tagged sentences or SQuAD-style questions; with ``--budget-data``
  that file chooses and the eval file reports, whole; otherwise the eval file is split in
  half, seeded (``calibration.token_data.split_in_half``).

Outputs are kept per example, cut to its real tokens; a static-shape artifact is compared
with fp32 run at that same shape (computed on first use), so fidelity measures quantization,
not truncation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeport.calibration.data import Records, builtin_texts
from edgeport.calibration.token_data import Questions, TaggedSentences, builtin_questions, split_in_half
from edgeport.calibration.token_feeds import Encoded, encode, run_encoded
from edgeport.errors import UsageError, VerificationError
from edgeport.stages.reference import Evidence, Reference, Side
from edgeport.verify import VERIFY_BATCH, Check, Runner, label_indices, qa_accuracy, span_fidelity, \
    tagging_accuracy, token_fidelity


@dataclass
class TokenSet:
    """Sentences or questions, their fp32 outputs per example at natural lengths, and (with
    ``shape``) at a static artifact's shape: (encoding, outputs) computed on first use."""

    records: Records | TaggedSentences | Questions
    encoded: Encoded
    outputs: list[np.ndarray]
    gold: list[list[int]] | None = None  # tagged sentences: class indices per word
    at_shape: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.records.source


@dataclass
class TokenReference(Reference):
    id2label: dict | None = None

    def _encoded(self, texts: TokenSet, shape: tuple[int, int] | None) -> tuple[Encoded, list[np.ndarray]]:
        if shape is None:
            return texts.encoded, texts.outputs
        if shape not in texts.at_shape:
            encoded = encode(self.tokenizer, texts.records, self.input_names, shape[0], shape[1])
            texts.at_shape[shape] = encoded, run_encoded(self.runner, encoded)
        return texts.at_shape[shape]

    def _run(self, texts: TokenSet, runner: Runner) -> tuple[Encoded, list[np.ndarray], list[np.ndarray]]:
        encoded, fp32 = self._encoded(texts, runner.fixed_shape)
        out = run_encoded(runner, encoded)
        bad = sum(1 for row in out if not np.isfinite(row).all())
        if bad:
            raise VerificationError(f"the artifact's outputs contain NaN or infinity on {bad} of {len(out)} "
                                    f"examples of {texts.source}", hint="the artifact is broken; try another target")
        return encoded, out, fp32

    def check(self, runner: Runner, side: Side = "report") -> Check:
        evidence = self.selection if side == "selection" else self.report
        encoded, out, fp32 = self._run(evidence.heldout, runner)
        measure = span_fidelity if self.task == "question-answering" else token_fidelity
        fid = measure(out, fp32, encoded.scored, evidence.heldout.source)
        acc = None
        if evidence.eval is not None:
            labelled = evidence.eval
            encoded, out, fp32 = self._run(labelled, runner)
            if self.task == "question-answering":
                acc = qa_accuracy(out, fp32, encoded.scored, encoded.offsets, labelled.records.contexts,
                                  [a.texts for a in labelled.records.answers], labelled.source)
            else:
                acc = tagging_accuracy(out, fp32, encoded.word_ids, labelled.gold, self.id2label, labelled.source)
        return Check(fidelity=fid, accuracy=acc, runtime=runner.info())


def _heldout_sets(task: str) -> tuple[Records | Questions, Records | Questions]:
    if task == "question-answering":
        return builtin_questions("selection-qa"), builtin_questions("heldout-qa")
    return builtin_texts("selection"), builtin_texts("heldout")


def token_reference_from(reference_runner: Runner, tokenizer, input_names, task: str,
                         eval_data: TaggedSentences | Questions | None, id2label: dict | None,
                         selection_data: TaggedSentences | Questions | None = None) -> TokenReference:
    """The fp32 reference of a tagger or a QA reader (``eval_data``: labelled sentences or
    questions, split in half unless ``selection_data`` chooses)."""
    if task == "token-classification" and eval_data is not None and not id2label:
        raise UsageError("entity F1 needs the tagger's label names (id2label in config.json), and this model "
                         "has none", hint="give the folder with the model's config.json via --tokenizer")
    ref = TokenReference(reference_runner, tokenizer, tuple(input_names), task, None, None, id2label)

    def make(data) -> TokenSet:
        encoded = encode(tokenizer, data, ref.input_names, VERIFY_BATCH)
        gold = None
        if isinstance(data, TaggedSentences) and data.tags is not None:
            gold = [label_indices(tags, id2label, data.source) for tags in data.tags]
        return TokenSet(data, encoded, run_encoded(reference_runner, encoded), gold)

    chooser, grader = _heldout_sets(task)
    ref.selection, ref.report = Evidence(make(chooser)), Evidence(make(grader))
    if eval_data is not None:
        if selection_data is None:
            selection_data, eval_data = split_in_half(eval_data)
        ref.selection.eval, ref.report.eval = make(selection_data), make(eval_data)
    return ref
