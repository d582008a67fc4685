"""Progress of long work (training epochs, index chunks, scale-sweep runs) as lines in the job's log.

A workflow script sends its job's stderr to the rule's log file
(``sys.stderr = open(snakemake.log[0], "w")``); the ``cellquery.progress``
logger writes to whatever ``sys.stderr`` is when a line is emitted, so the
lines land in ``results/logs/...`` and can be followed with ``tail -f``::

    2026-12-02 07:52:41 gnn fine-tuning: 40/100 epochs done, elapsed 0:00:12, ETA 0:00:18

A line is written after the first step, then at most every ``every_s``
seconds, and after the last step (the ETA is the elapsed time per step times
the steps left). :func:`lightning_callback` does the same for a Lightning
trainer (scVI, scANVI), one step per training epoch.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")

log = logging.getLogger("cellquery.progress")
# seconds between two progress lines of one task (first and last step always logged)
EVERY_S = 30.0


class _CurrentStderr(logging.StreamHandler):
    """A stream handler writing to the ``sys.stderr`` of the moment (the job's log once a script redirected it)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns one; the current stderr is always used
        pass


if not any(isinstance(h, _CurrentStderr) for h in log.handlers):
    _handler = _CurrentStderr()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


class Progress:
    """Counts steps of one task of ``total`` steps and logs ``done/total``, elapsed time and ETA.

    ``total`` None (unknown) logs the count and elapsed time without ETA.
    ``clock`` is injectable for tests (default :func:`time.monotonic`).
    """

    def __init__(self, task: str, total: int | None, unit: str = "steps", *, every_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.task, self.total, self.unit = task, total, unit
        self.every_s = EVERY_S if every_s is None else float(every_s)
        self.clock = clock
        self.start = clock()
        self.done = 0
        self._last_logged: float | None = None

    def line(self) -> str:
        elapsed = self.clock() - self.start
        total = "" if self.total is None else f"/{self.total}"
        text = f"{self.task}: {self.done}{total} {self.unit} done, elapsed {_clock(elapsed)}"
        if self.total is not None and self.done > 0:
            text += f", ETA {_clock(elapsed / self.done * max(self.total - self.done, 0))}"
        return text

    def update(self, n: int = 1) -> None:
        """``n`` more steps done; log a line if this is the first or last step or ``every_s`` has passed."""
        self.done += n
        now = self.clock()
        last = self.total is not None and self.done >= self.total
        if self._last_logged is None or last or now - self._last_logged >= self.every_s:
            self._last_logged = now
            log.info(self.line())


def progress(items: Iterable[T], task: str, total: int | None = None, unit: str = "steps", *,
             every_s: float | None = None) -> Iterator[T]:
    """Yield ``items``, logging progress after each one (``total`` defaults to ``len(items)`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    counter = Progress(task, total, unit, every_s=every_s)
    for item in items:
        yield item
        counter.update()


def lightning_callback(task: str, *, every_s: float | None = None):
    """A Lightning callback logging progress per training epoch (total: the trainer's ``max_epochs``).

    None where Lightning is not installed (it comes with scvi-tools, whose trainer takes the callback).
    """
    try:
        from lightning.pytorch.callbacks import Callback
    except ImportError:
        return None

    class ProgressCallback(Callback):
        def __init__(self):
            self.counter: Progress | None = None

        def on_train_start(self, trainer, pl_module):
            self.counter = Progress(task, trainer.max_epochs, "epochs", every_s=every_s)

        def on_train_epoch_end(self, trainer, pl_module):
            if self.counter is not None:
                self.counter.update()

    return ProgressCallback()
