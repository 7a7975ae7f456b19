"""`edgeport predict`: texts through one built artifact of a run, served by edgeport.runtime
(the path an application takes), as a document of embeddings or labels."""

from __future__ import annotations

from pathlib import Path

from edgeport.errors import DataFileError, InputError, TargetUnavailableError, UsageError
from edgeport.runs import RunDir


def predict_texts(run_dir: Path, target: str, texts: list[str], texts_file: Path | None,
                  threads: int | None = None) -> dict:
    import edgeport.runtime as runtime

    if bool(texts) == bool(texts_file):
        raise UsageError("give the texts with --text (repeatable) or --file, one of them")
    if texts_file is not None:
        try:
            texts = runtime.read_texts(str(texts_file))
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFileError(f"cannot read texts from '{texts_file}': {exc}") from exc
        if not texts:
            raise DataFileError(f"'{texts_file}' holds no texts (one per line)")
    run = RunDir(Path(run_dir))
    if target not in run.built_targets():
        raise UsageError(f"target '{target}' was not built in '{run_dir}'",
                         hint=f"built: {', '.join(run.built_targets()) or 'none'}")
    try:
        predictor = runtime.load(run.target_dir(target), threads=threads)
        document = {"target": target, "task": predictor.task, "texts": texts}
        if predictor.task == "text-classification":
            document["labels"] = predictor.classify(texts)
        else:
            document["embeddings"] = predictor.embed(texts).round(6).tolist()
    except runtime.RuntimeMissingError as exc:
        raise TargetUnavailableError(str(exc), hint=f"install the runtime of {target}") from exc
    except runtime.ArtifactError as exc:
        raise InputError(f"cannot serve {target}: {exc}",
                         hint=f"rebuild it: edgeport export MODEL --target {target} --out {run_dir}") from exc
    document["request_path"] = predictor.info()
    document["warnings"] = list(predictor.warnings)
    return document
