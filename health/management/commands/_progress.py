"""A progress line for long commands: redrawn in place on a terminal, one
line per tenth of the way otherwise (so CI logs stay short)."""

import sys
import time


class ProgressLine:
    def __init__(self, stream, label: str) -> None:
        self.stream = stream
        self.label = label
        self.started = time.monotonic()
        self.tty = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        percent = 100 * done / total if total else 100
        text = f"{self.label}: {done:,} / {total:,} ({percent:.0f}%, {elapsed:.1f}s)"
        if self.tty:
            self.stream.write("\r" + text, ending="")
            self.stream.flush()
            return
        tenth = int(percent // 10)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self.stream.write(text)

    def finish(self) -> None:
        if self.tty:
            self.stream.write("")
