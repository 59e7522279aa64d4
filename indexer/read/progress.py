"""Progress on stderr: a bar on a terminal, plain periodic lines in CI logs."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

LINE_EVERY_S = 10.0


class Progress:
    """Counts work done out of a known total for one labelled stage."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._start = self._last

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.tty:
                if now - self._last >= 0.1 or self.done == self.total:
                    self._last = now
                    self._draw()
            elif now - self._last >= LINE_EVERY_S:
                self._last = now
                self._line()

    def finish(self) -> None:
        if self.total == 0:
            return
        if self.tty:
            self._draw()
            self.stream.write("\n")
        else:
            self._line()
        self.stream.flush()

    def _draw(self) -> None:
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()

    def _line(self) -> None:
        elapsed = time.monotonic() - self._start
        self.stream.write(f"{self.label}: {self.done}/{self.total} ({elapsed:.0f} s)\n")
        self.stream.flush()
