"""Stopping a run cleanly when asked: SIGTERM (what schedulers send before they preempt a job)
and SIGINT (Ctrl-C) end training at the next step boundary, after a checkpoint of that step, so a
resume continues from exactly there. A second signal stops at once (a KeyboardInterrupt: the run
resumes from its last checkpoint instead).

Data-loader workers ignore both signals (`quiet_worker`): the trainer decides when to stop, and a
worker killed by Ctrl-C would fail the step before the checkpoint."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Callable, Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(KeyboardInterrupt):
    """Training stopped on a signal after writing a checkpoint at a step boundary; the message names
    the checkpoint to resume from."""


REPEAT_SECONDS = 1.0  # a second signal sooner than this after the first is the same stop


class StopRequest:
    """Set by the first SIGTERM or SIGINT while training runs: its name, else None."""

    def __init__(self) -> None:
        self.signal: str | None = None


@contextlib.contextmanager
def graceful_stop(log: Callable[[str], None]) -> Iterator[StopRequest]:
    """Within the block, the first SIGTERM or SIGINT only sets the request (the trainer checks it
    after each step); a second one, a second or more later, raises KeyboardInterrupt. (Within a
    second it is the same stop arriving twice: Ctrl-C reaches every process of the terminal's
    group, and a scheduler may signal each process of a job as well as its launcher, which passes
    it on to the ranks of `run --nproc`.) Outside the main thread (where Python cannot install
    handlers) signals keep their usual effect."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    first = [0.0]

    def asked(signum, frame):  # noqa: ARG001
        if request.signal is not None:
            if time.monotonic() - first[0] < REPEAT_SECONDS:
                return
            raise KeyboardInterrupt
        first[0] = time.monotonic()
        request.signal = signal.Signals(signum).name
        log(f"{request.signal}: stopping after this step, with a checkpoint to resume from (send it again to stop at once)")

    previous = {s: signal.signal(s, asked) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def quiet_worker() -> None:
    """In a data-loader worker: SIGTERM and SIGINT are the trainer's to act on."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)
