"""The errors a user sees. Each has one clear message, a hint, and a documented exit code.

Exit codes (also in the README):

====  ==========================================================================
0     success
1     internal error (a bug in edgeport: run again with --debug and report it)
2     usage error: unknown target or device, bad option values
3     input error: model folder, ONNX file, calibration or eval file unusable
4     a target's SDK or runtime is missing on this host
5     verification failed: export parity, or an accuracy/fidelity budget not met
6     device error: unreachable, refused host key or login, timeout, dropped
7     cluster error: Ray cluster unreachable or refused the token, a job's node lost
130   interrupted (Ctrl-C); 143: stopped by SIGTERM (finished stages are kept)
====  ==========================================================================
"""

from __future__ import annotations


class EdgeportError(Exception):
    """Base of every error meant for the user (never shown with a traceback)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(EdgeportError):
    exit_code = 2


class UnknownTargetError(UsageError):
    pass


class RunFolderBusyError(UsageError):
    """Another edgeport command holds the run folder's lock."""


class InputError(EdgeportError):
    exit_code = 3


class ModelNotFoundError(InputError):
    pass


class CorruptOnnxError(InputError):
    pass


class DataFileError(InputError):
    """A calibration or eval file that is missing, empty, binary or malformed."""


class TargetUnavailableError(EdgeportError):
    exit_code = 4


def import_optional(module: str, name: str, needed_for: str, extra: str, pin: str):
    """``module`` imported, or exit 4 naming the edgeport extra that installs it (never
    installed at run time)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TargetUnavailableError(f"{name} is not installed; {needed_for}",
                                     hint=f"pip install 'edgeport[{extra}]' ({pin})") from exc


class TargetUnsupportedError(UsageError):
    """A target that cannot handle the model's family or task (said before building)."""


class VerificationError(EdgeportError):
    exit_code = 5


class ParityError(VerificationError):
    pass


class BudgetNotMetError(VerificationError):
    pass


class DistillationAbandonedError(VerificationError):
    """Distillation stopped after its first epoch because the student was too far below its
    teacher (``distill.give_up_drop``): no artifact is built from a hopeless model."""


class DeviceError(EdgeportError):
    exit_code = 6


class HostKeyError(DeviceError):
    pass


class DeviceTimeoutError(DeviceError):
    pass


class ClusterError(EdgeportError):
    """The sweep engine (Ray): cluster unreachable, token refused, a job's node or worker lost."""

    exit_code = 7


EXIT_CODES = {
    0: "success",
    1: "internal error (a bug: run again with --debug and report it)",
    UsageError.exit_code: "usage error: unknown target or device, bad option values",
    InputError.exit_code: "input error: model folder, ONNX, calibration or eval file unusable",
    TargetUnavailableError.exit_code: "a target's SDK or runtime is missing on this host",
    VerificationError.exit_code: "verification failed: export parity or accuracy budget not met",
    DeviceError.exit_code: "device error: unreachable, refused host key/login, timeout, dropped",
    ClusterError.exit_code: "cluster error: Ray unreachable or refused the token, a job's node lost",
    130: "interrupted (Ctrl-C)",
    143: "stopped by SIGTERM (finished stages are kept)",
}
