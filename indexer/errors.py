"""Errors that end a run with a one-line reason instead of a traceback.

The CLI maps them to exit codes: `UsageError` → 2, `RunError` → 1.
"""


class UsageError(Exception):
    """The command line or settings are wrong (exit status 2)."""


class RunError(Exception):
    """The run could not complete: storage unreachable, denied, ... (exit status 1)."""


class Conflict(RunError):
    """Another writer changed an object between our read and our conditional write."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} was changed by another writer during this run")
        self.path = path
        self.written: list[str] = []  # what a publish had written before it (see publish)
        self.partial: object = None  # what a stage had done before it (see read_and_cache)
