"""Three disjoint sets for a tune: the training rows (distillation, vocabulary, importance,
calibration), the selection rows carved from the training data (every choice), and the
report set (the recipe's eval data: graded once, at the end).

The carve is ``calibration.data.carve`` named in the recipes themselves (a DataSpec's
``split``: the same file, size, seed and minimum length give the same rows), so a trial's
recipe and a tuned recipe reproduce their sets from the training file alone. Selection and
training rows are disjoint by text by construction; with ``drop_inner_phrases`` the training
part also loses the rows whose words run inside a selection text (measured on SST-2's
train.tsv, 2,000 selection sentences of at least 10 words: 14,595 of the 65,349 other rows are
such phrases, and a selection sentence's longest one covers a median 87.5% of its words; a
dev.tsv sentence's, 8%), and the count is recorded either way. A training or selection text
that is also in the report set means the report set is not unseen, and the tune says so loudly.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeport.calibration.data import (
    Carved,
    Records,
    carve,
    inside_any,
    records_from_file,
    row_keys,
)
from edgeport.recipe import DataSpec, SplitSpec
from edgeport.tune.spec import Selection


@dataclass(frozen=True)
class TuneSets:
    train: DataSpec  # the training file, less the selection rows
    choose: DataSpec  # the selection rows
    train_rows: int
    selection_rows: int
    dropped: dict  # rows dropped from the training part, and rows shared with the report set
    selection_records: Records


def tune_sets(data: DataSpec, selection: Selection, report: Records) -> TuneSets:
    split = dict(size=selection.size, seed=selection.seed, min_words=selection.min_words,
                 drop_inner_phrases=selection.drop_inner_phrases)
    train = data.model_copy(update={"split": SplitSpec(part="rest", **split)})
    choose = data.model_copy(update={"split": SplitSpec(part="selection", **split)})
    records = records_from_file(data.path, data.text_column, data.label_column, need_labels=True,
                                text_pair_column=data.text_pair_column)
    carved = carve(records, selection.size, selection.seed, selection.min_words, selection.drop_inner_phrases)
    reported = set(row_keys(report))
    dropped = {"train_rows_repeating_a_selection_text": carved.dropped,
               # dropped with drop_inner_phrases, else still in the training part: the selection rows are partly seen
               "train_rows_inside_a_selection_text": carved.inner if selection.drop_inner_phrases else
               _inside_count(carved),
               "selection_rows_in_report_set": len(set(row_keys(carved.selection)) & reported),
               "train_rows_in_report_set": len(set(row_keys(carved.rest)) & reported)}
    return TuneSets(train, choose, len(carved.rest.texts), len(carved.selection.texts), dropped, carved.selection)


def _inside_count(carved: Carved) -> int:
    """Training rows whose words run inside a selection text (single texts; pairs: not counted)."""
    if carved.rest.pairs is not None:
        return 0
    return sum(inside_any(carved.rest.texts, carved.selection.texts))
