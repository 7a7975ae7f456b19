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
      .edgeport.lock         held (flock) by the one command writing to the folder

Guarantees: one command at a time writes to a run folder (a second one is refused while
the lock is held); a stage folder is swapped in whole or not at all, and a signal that
arrives during the swap is acted on just after it; a temporary folder that a killed process
left behind is removed by the next command; a folder created for a command that failed
before any stage completed is removed again.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

STAGE_KEY_FILE = ".stage-key"
MANIFEST = "manifest.json"
LOCK_FILE = ".edgeport.lock"
TMP_MARK, OLD_MARK = ".tmp-", ".old-"
_LEFTOVER = re.compile(r"^\.[^/]+\.(tmp|old)-[A-Za-z0-9_]{8}$")  # what mkdtemp/mkstemp make with these marks


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


class _Commits:
    """Signals (SIGINT, SIGTERM) that arrive while a stage is being swapped into place are
    held back until the swap is done: an interrupted command never leaves a stage missing."""

    depth = 0
    pending: BaseException | None = None


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now, or, during a commit, just after it (called by signal handlers)."""
    if _Commits.depth:
        _Commits.pending = _Commits.pending or exc
        return
    raise exc


def forget_pending_interrupt() -> None:
    """Drop a signal held back during a commit that nothing raised (the command ended first)."""
    _Commits.pending = None


@contextlib.contextmanager
def committing() -> Iterator[None]:
    _Commits.depth += 1
    try:
        yield
    finally:
        _Commits.depth -= 1
    if not _Commits.depth and _Commits.pending is not None:
        exc, _Commits.pending = _Commits.pending, None
        raise exc


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``final`` whole, on error it vanishes.

    The temporary folder lives in the nearest existing ancestor of ``final`` (same file
    system, so the final rename is atomic) and no parent folder of ``final`` is created
    unless the stage succeeds.
    """
    final = final.absolute()
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{TMP_MARK}", dir=_existing_ancestor(final.parent)))
    old = None
    try:
        yield tmp
        with committing():
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{final.name}{OLD_MARK}", dir=final.parent))
                final.rename(old / final.name)
                try:
                    tmp.rename(final)
                except BaseException:
                    (old / final.name).rename(final)
                    raise
            else:
                tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def clear_leftovers(root: Path) -> list[Path]:
    """Remove the temporary files and folders a killed command left in a run folder (called
    with the folder's lock held, so no live command owns them)."""
    removed = []
    for folder in (root, root / "targets", root / "calibration"):
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            if _LEFTOVER.match(item.name):
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
                removed.append(item)
    return removed


@contextlib.contextmanager
def run_lock(root: Path, create: bool = True) -> Iterator[None]:
    """Hold RUN_DIR's lock while a command writes to it; refuse when another command holds it.

    With ``create`` a missing run folder is made (so that even the temporary folders of the
    first stage live inside it) and removed again, with any parent made for it, if the
    command ends with nothing in it. Without ``create`` a missing folder is left to the
    command to report."""
    import fcntl

    from edgeport.errors import InputError, RunFolderBusyError

    root = Path(root)
    made: list[Path] = []
    if not root.exists():
        if not create:
            yield
            return
        missing = root.absolute()
        while not missing.exists():
            made.append(missing)
            missing = missing.parent
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create the run folder '{root}': {exc.strerror or exc}",
                             hint="pass another --out") from exc
    elif not root.is_dir():
        raise InputError(f"'{root}' exists and is not a folder", hint="pass another --out")
    lock = root / LOCK_FILE
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            _remove_made(made)
            raise InputError(f"the run folder '{root}' is not writable: {exc.strerror or exc}",
                             hint="make it writable, or pass another --out") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"cannot lock the run folder '{root}': {exc.strerror or exc}") from exc
            raise RunFolderBusyError(
                f"another edgeport command{f' (pid {holder})' if holder else ''} is writing to the run folder "
                f"'{root}'", hint="wait until it finishes, or pass another --out") from exc
        try:  # the file may have been removed by its last holder between open and flock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        clear_leftovers(root)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
        if made and not any(root.iterdir()):
            _remove_made(made)


def _remove_made(made: list[Path]) -> None:
    """Remove the folders made for a run folder (deepest first), each only if empty."""
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()


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
