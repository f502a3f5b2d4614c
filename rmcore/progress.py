"""Progress of long work and model loads: a bar on a terminal, log lines everywhere else.

A tqdm bar in a log file or CI output is carriage-return noise that says nothing until the
end, so when stderr is not a terminal the same progress goes to the `rmcurate.progress`
logger: one line every `LOG_EVERY_S` seconds and one when the work ends. Model loads log one
line each there too, with transformers' own "Loading weights" bars switched off
(`quiet_load`). The CLI prints this logger's lines on stderr (`cli.env`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOG_EVERY_S = 10.0
log = logging.getLogger("rmcurate.progress")


class Progress:
    """`update(n)` as work gets done; `close()` (or the `with` block's end) when it ends."""

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        unit: str,
        enabled: bool = True,
        terminal: bool | None = None,
        every: float = LOG_EVERY_S,
    ) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.enabled = enabled and total > 0
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.done, self.postfix = 0, ""
        self.started = self.last_line = time.monotonic()
        self.bar = None
        if self.enabled and terminal:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if postfix:
            self.postfix = ", ".join(f"{k} {v}" for k, v in postfix.items())
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix)
        elif self.enabled and (now := time.monotonic()) - self.last_line >= self.every:
            self._line(now)

    def _line(self, now: float, verb: str = "") -> None:
        self.last_line = now
        share = 100 * self.done / self.total
        extra = f"; {self.postfix}" if self.postfix else ""
        log.info(
            "%s: %s%s/%s %s (%.0f%%) in %.1f s%s",
            self.desc,
            verb,
            f"{self.done:,}",
            f"{self.total:,}",
            self.unit,
            share,
            self.last_line - self.started,
            extra,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self._line(time.monotonic(), "done ")
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, failed: type[BaseException] | None, *_: object) -> None:
        if failed is not None:  # no "done" line for work cut short (an OOM retried, a bug)
            self.enabled = False
        self.close()


@contextmanager
def quiet_load(what: str) -> Iterator[None]:
    """Load a model without transformers' progress bars; log one line when it is loaded."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    started = time.monotonic()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
    log.info("loaded %s in %.1f s", what, time.monotonic() - started)
