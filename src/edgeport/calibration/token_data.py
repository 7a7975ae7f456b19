"""Data of the per-token tasks: tagged sentences (token classification, NER) and questions
with their contexts and answers (extractive question answering), and the built-in QA sets.

- Tagged sentences, CoNLL style (``.conll``, ``.txt``, ``.iob``, ``.bio``): one word per line,
  its tag in the last whitespace-separated field (``word<space|tab>...<tag>``); a blank line
  ends a sentence; ``-DOCSTART-`` lines are skipped.
- Tagged sentences, ``.jsonl``: ``{"tokens": [...], "ner_tags": [...]}`` per line; tags are
  class names (``B-PER``) or class indices, mapped through the model's ``id2label`` later
  (``verify.label_indices``), like sequence classifiers' labels.
- Questions, SQuAD style ``.jsonl``: ``{"question", "context", "answers": {"text": [...],
  "answer_start": [...]}}`` per line; every answer must be found in its context at its start.

Every problem with a file raises :class:`DataFileError` naming the file, the line and what to do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgeport.calibration.data import MAX_TEXT_CHARS, Records, _read_text, _rows_jsonl
from edgeport.errors import DataFileError

CONLL_SUFFIXES = (".conll", ".txt", ".iob", ".bio")
TAGGED_SUFFIXES = CONLL_SUFFIXES + (".jsonl",)
QA_SUFFIXES = (".jsonl",)
# Three disjoint built-in QA sets, synthetic and hand-written for edgeport (short invented
# paragraphs, not taken from any dataset): calibration, selection (the budget chooses on it),
# held-out (reported fidelity).
BUILTIN_QA = {"calibration-qa": "qa_synthetic_calibration_en.jsonl",
              "selection-qa": "qa_synthetic_selection_en.jsonl",
              "heldout-qa": "qa_synthetic_heldout_en.jsonl"}


@dataclass(frozen=True)
class TaggedSentences:
    """Sentences as words, with one tag per word when labelled."""

    source: str
    words: list[list[str]]
    tags: list[list[str]] | None = None

    @property
    def texts(self) -> list[str]:
        """Each sentence as one text (its words joined by spaces): calibration and display."""
        return [" ".join(words) for words in self.words]

    def as_records(self) -> Records:
        return Records(self.source, self.texts)


@dataclass(frozen=True)
class Answers:
    texts: tuple[str, ...]
    starts: tuple[int, ...]


@dataclass(frozen=True)
class Questions:
    """Questions with their contexts, and the gold answers when labelled."""

    source: str
    questions: list[str]
    contexts: list[str]
    answers: list[Answers] | None = None

    @property
    def texts(self) -> list[str]:
        return self.questions

    def as_records(self) -> Records:
        """(question, context) pairs: how calibration feeds a QA reader."""
        return Records(self.source, self.questions, pairs=self.contexts)


def _where(path: Path, line: int) -> str:
    return f"'{path}' line {line}"


def tagged_from_file(path: Path, need_tags: bool = True) -> TaggedSentences:
    """Tagged sentences from a CoNLL-style file or a ``.jsonl`` file of tokens and tags."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TAGGED_SUFFIXES:
        raise DataFileError(f"'{path}' has an unknown extension '{suffix}' for tagged sentences",
                            hint=f"use CoNLL ({', '.join(CONLL_SUFFIXES)}) or .jsonl with tokens and ner_tags")
    text = _read_text(path)
    sentences = _conll(path, text) if suffix != ".jsonl" else _tagged_jsonl(path, text, need_tags)
    if not sentences:
        raise DataFileError(f"'{path}' holds no sentence", hint="one word and its tag per line, sentences "
                            "separated by a blank line")
    words = [w for w, _ in sentences]
    tags = [t for _, t in sentences]
    return TaggedSentences(str(path), words, None if any(t is None for t in tags) else tags)


def _conll(path: Path, text: str) -> list[tuple[list[str], list[str]]]:
    sentences, words, tags = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if len(fields) < 2:
            raise DataFileError(f"{_where(path, number)} has a word but no tag ('{line.strip()[:40]}')",
                                hint="CoNLL lines are: word<space or tab>...<tag>; a blank line ends a sentence")
        words.append(fields[0])
        tags.append(fields[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def _string_list(value, path: Path, number: int, key: str, kinds: tuple[type, ...]) -> list:
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, kinds) for v in value):
        names = " or ".join(k.__name__ for k in kinds)
        raise DataFileError(f"{_where(path, number)}: '{key}' is not a list of {names}",
                            hint='e.g. {"tokens": ["John", "lives", "here"], "ner_tags": ["B-PER", "O", "O"]}')
    return value


def _tagged_jsonl(path: Path, text: str, need_tags: bool) -> list[tuple[list[str], list[str] | None]]:
    sentences = []
    for number, row in enumerate(_rows_jsonl(path, text), 1):
        if "tokens" not in row:
            raise DataFileError(f"{_where(path, number)} has no 'tokens'",
                                hint=f"it has: {', '.join(row) or 'nothing'}")
        words = [w.strip() for w in _string_list(row["tokens"], path, number, "tokens", (str,))]
        if any(not w or any(c.isspace() for c in w) for w in words):
            raise DataFileError(f"{_where(path, number)}: a token is empty or holds whitespace",
                                hint="tokens are single words")
        tags = None
        if "ner_tags" in row:
            tags = [str(t).strip() for t in _string_list(row["ner_tags"], path, number, "ner_tags", (str, int))]
            if len(tags) != len(words):
                raise DataFileError(f"{_where(path, number)}: {len(words)} tokens but {len(tags)} tags",
                                    hint="give one tag per token")
        elif need_tags:
            raise DataFileError(f"{_where(path, number)} has no 'ner_tags'", hint="give one tag per token")
        if words:
            sentences.append((words, tags))
    return sentences


def questions_from_file(path: Path, need_answers: bool = True) -> Questions:
    """Questions, contexts and answers from a SQuAD-style ``.jsonl`` file."""
    path = Path(path)
    if path.suffix.lower() not in QA_SUFFIXES:
        raise DataFileError(f"'{path}': question answering reads SQuAD-style .jsonl",
                            hint='one {"question": ..., "context": ..., "answers": {"text": [...], '
                                 '"answer_start": [...]}} per line')
    return _questions(str(path), path, _read_text(path), need_answers)


def _questions(source: str, path: Path, text: str, need_answers: bool) -> Questions:
    questions, contexts, answers = [], [], []
    for number, row in enumerate(_rows_jsonl(path, text), 1):
        for key in ("question", "context"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataFileError(f"{_where(path, number)}: '{key}' is missing or not a non-empty string",
                                    hint="every row has a question and its context")
            if len(row[key]) > MAX_TEXT_CHARS:
                raise DataFileError(f"{_where(path, number)}: a {key} of {len(row[key]):,} characters",
                                    hint=f"the limit is {MAX_TEXT_CHARS:,}")
        questions.append(row["question"].strip())
        contexts.append(row["context"])
        if "answers" in row:
            answers.append(_answers(row["answers"], row["context"], path, number))
        elif need_answers:
            raise DataFileError(f"{_where(path, number)} has no 'answers'",
                                hint='give "answers": {"text": [...], "answer_start": [...]}')
    if not questions:
        raise DataFileError(f"'{path}' holds no question", hint="one JSON object per line")
    return Questions(source, questions, contexts, answers if len(answers) == len(questions) else None)


def _answers(value, context: str, path: Path, number: int) -> Answers:
    if not isinstance(value, dict) or not isinstance(value.get("text"), list) \
            or not isinstance(value.get("answer_start"), list):
        raise DataFileError(f"{_where(path, number)}: 'answers' is not {{\"text\": [...], \"answer_start\": [...]}}",
                            hint="SQuAD's format")
    texts, starts = value["text"], value["answer_start"]
    if not texts:
        raise DataFileError(f"{_where(path, number)} has no answer (a SQuAD 2.0 unanswerable question)",
                            hint="edgeport measures extractive answers; drop unanswerable rows")
    if len(texts) != len(starts) or any(not isinstance(t, str) for t in texts) \
            or any(isinstance(s, bool) or not isinstance(s, int) for s in starts):
        raise DataFileError(f"{_where(path, number)}: answers need one text (string) and one answer_start "
                            f"(integer) each", hint="SQuAD's format")
    for answer, start in zip(texts, starts):
        if context[start:start + len(answer)] != answer:
            raise DataFileError(f"{_where(path, number)}: the answer '{answer[:40]}' is not at character {start} "
                                f"of its context", hint="answer_start is the answer's character offset in context")
    return Answers(tuple(texts), tuple(starts))


def builtin_questions(name: str) -> Questions:
    """A built-in synthetic QA set: ``calibration-qa``, ``selection-qa`` or ``heldout-qa``."""
    file = BUILTIN_QA[name]
    text = resources.files("edgeport.data").joinpath(file).read_text(encoding="utf-8")
    return _questions(f"builtin:{name}", Path(file), text, need_answers=True)


def split_in_half(data: TaggedSentences | Questions, seed: int = 0
                  ) -> tuple[TaggedSentences | Questions, TaggedSentences | Questions]:
    """(selection, report): a seeded split of labelled sentences or questions into two
    disjoint halves (every row lands in exactly one)."""
    count = len(data.words) if isinstance(data, TaggedSentences) else len(data.questions)
    if count < 2:
        raise DataFileError(f"{data.source} has too few rows ({count}) to split into a selection and a report set",
                            hint="give more labelled rows, or a separate --budget-data file")
    order = list(range(count))
    random.Random(seed).shuffle(order)
    chosen = set(order[:count // 2])

    def part(keep: bool, name: str):
        rows = [i for i in range(count) if (i in chosen) == keep]
        source = f"{data.source} ({name} split, {len(rows)} of {count})"
        if isinstance(data, TaggedSentences):
            return TaggedSentences(source, [data.words[i] for i in rows],
                                   None if data.tags is None else [data.tags[i] for i in rows])
        return Questions(source, [data.questions[i] for i in rows], [data.contexts[i] for i in rows],
                         None if data.answers is None else [data.answers[i] for i in rows])

    return part(True, "selection"), part(False, "report")
