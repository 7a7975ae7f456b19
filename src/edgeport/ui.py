"""What the user sees while work runs: messages and progress on stderr (rich), silent in
--json mode so that stdout carries the results document alone."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Callable, Iterator

from rich.console import Console


class UI:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        """A spinner on a terminal for a long step; one line in a log otherwise."""
        if self.quiet:
            yield
            return
        if self.console.is_terminal:
            with self.console.status(message):
                yield
        else:
            self.console.print(f"… {message}")
            yield


    @contextlib.contextmanager
    def progress(self, message: str, total: int) -> Iterator[Callable[..., None]]:
        """A progress bar for long counted work; yields ``advance(n=1, status="")``. In a log
        (not a terminal) a line is printed at every tenth of the way."""
        if self.quiet:
            yield lambda n=1, status="": None
            return
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       TextColumn("{task.fields[status]}"))
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(message, total=total, status="")
                yield lambda n=1, status="": bar.update(task, advance=n, status=status)
            return
        done = {"n": 0, "shown": 0}

        def advance(n: int = 1, status: str = "") -> None:
            done["n"] += n
            tenth = done["n"] * 10 // max(total, 1)
            if tenth > done["shown"]:
                done["shown"] = tenth
                self.console.print(f"… {message}: {done['n']}/{total} {status}".rstrip())

        yield advance


def quiet_libraries() -> None:
    """Silence the libraries' own warnings and progress bars (shown again with --debug)."""
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("nncf", "openvino", "onnxruntime", "torch", "torchao", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched from a hub
    os.environ.setdefault("TORCH_LOGS", "-all")  # torch's own log handlers (set up at import) at ERROR
    os.environ["EDGEPORT_QUIET"] = "1"


def quiet_transformers() -> None:
    """Called right after transformers is imported (it is imported lazily)."""
    if os.environ.get("EDGEPORT_QUIET"):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
