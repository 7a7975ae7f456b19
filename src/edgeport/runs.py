"""Run folder layout, atomic writes and content-addressed stage cache keys.

A run folder holds one stage's output per sub-folder, each written to a temporary folder
next to it and renamed into place only when complete, so an interrupted or failed stage
never leaves a half-written artifact::

    RUN_DIR/
      model/                 the (possibly compressed) Hugging Face model folder + tokenizer
      onnx/model.onnx        the exported ONNX graph + manifest.json (parity figures)
      reference/             fp32 PyTorch outputs on the held-out texts (verification)
      targets/<target>/      one deployable artifact + manifest.json
      results.json           the results document (see results.py)
      report.md, report.html
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

STAGE_KEY_FILE = ".stage-key"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def onnx_dir(self) -> Path:
        return self.root / "onnx"

    @property
    def onnx_path(self) -> Path:
        return self.onnx_dir / "model.onnx"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def results_path(self) -> Path:
        return self.root / "results.json"

    def target_dir(self, target: str) -> Path:
        return self.root / "targets" / target

    def built_targets(self) -> list[str]:
        base = self.root / "targets"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / MANIFEST).is_file())


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``final`` whole, on error it vanishes.

    The temporary folder lives in the nearest existing ancestor of ``final`` (same file
    system, so the final rename is atomic) and no parent folder of ``final`` is created
    unless the stage succeeds.
    """
    final = final.absolute()
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=_existing_ancestor(final.parent)))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        final.rename(old / final.name)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def hash_path(path: Path) -> str:
    """sha256 over a file, or over every file of a folder (names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file.name == STAGE_KEY_FILE:
            continue
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(**parts: Any) -> str:
    """A content-addressed key: inputs' hashes, options and tool versions, canonicalised."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def stage_is_current(stage_dir: Path, key: str) -> bool:
    marker = stage_dir / STAGE_KEY_FILE
    return marker.is_file() and marker.read_text().strip() == key


def mark_stage(stage_dir: Path, key: str) -> None:
    (stage_dir / STAGE_KEY_FILE).write_text(key + "\n")


TOOL_DISTRIBUTIONS = (
    "edgeport", "torch", "transformers", "onnx", "onnxruntime", "openvino", "nncf",
    "ai-edge-litert", "litert-torch", "ai-edge-quantizer", "tensorrt", "numpy",
)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """edgeport's version plus a hash of its own source, so a changed build step never
    reuses an artifact made by the old code."""
    from edgeport import __version__

    package = Path(__file__).parent
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def tool_versions(names: tuple[str, ...] = TOOL_DISTRIBUTIONS) -> dict[str, str]:
    """Installed versions of the tools that shape an artifact (without importing them)."""
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found
