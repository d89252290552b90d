"""A training run's writes to the store, sent by a background thread that outlasts an outage.

The runner hands everything it reports (progress, metrics, checkpoints, results, the final
status) to a Reporter and goes on training. The thread sends the writes in order; while the
store cannot be reached it keeps them and retries with exponential back-off, so a dropped
connection costs no metric and never stops the training. Progress, checkpoints and cancel polls
are "latest wins": a newer one replaces a pending one of the same name. `flush()` returns once
everything sent so far is in the store. The same queue carries a run's reports to a tracker
(`gradloss.trackers.live`: `what` names it in the log).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from typing import Callable

from gradloss.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0


class Reporter:
    """Send store writes in order from a thread, retrying each while the store is unreachable.

    `store` is needed only for should_cancel; `what` names where the writes go, in the log;
    `max_delay_s` caps the back-off between two tries."""

    def __init__(self, store=None, what: str = "the run store", max_delay_s: float = MAX_DELAY_S):
        self._store, self._what, self._max_delay = store, what, max_delay_s
        self._pending: OrderedDict = OrderedDict()  # key -> (fn, args)
        self._numbers = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._cancelled: dict[str, bool] = {}  # run id -> what the store said last
        self._thread = threading.Thread(target=self._loop, name="reporter", daemon=True)
        self._thread.start()

    def send(self, fn: Callable, *args, latest: str | None = None) -> None:
        """Call fn(*args) soon; with `latest`, replace a pending call of the same name."""
        with self._changed:
            key = latest if latest is not None else next(self._numbers)
            self._pending.pop(key, None)
            self._pending[key] = (fn, args)
            self._changed.notify_all()

    def should_cancel(self, run_id: str) -> bool:
        """Ask the store (in the background) whether to stop the run; answer what it said last."""
        self.send(self._poll, run_id, latest=f"cancel {run_id}")
        return self._cancelled.get(run_id, False)

    def _poll(self, run_id: str) -> None:
        self._cancelled[run_id] = self._store.runs.cancel_requested(run_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write sent so far is in the store (however long it stays away, or
        at most `timeout` seconds); True once they all are."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending, timeout)

    @property
    def pending(self) -> int:
        """How many writes wait to be sent."""
        with self._changed:
            return len(self._pending)

    def close(self) -> None:
        """flush(), then stop the thread."""
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        delay, failing = FIRST_DELAY_S, False
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                key, call = next(iter(self._pending.items()))
            try:
                call[0](*call[1])
            except ServiceUnavailable as exc:
                if not failing:
                    log.warning("%s; keeping the run's reports and retrying", exc)
                failing = True
                time.sleep(delay)
                delay = min(2 * delay, self._max_delay)
                continue
            except Exception:  # a bug in one write must not lose the others
                log.exception("a write to %s failed; dropping it", self._what)
            if failing:
                log.warning("%s is reachable again; sending %d pending report(s)", self._what,
                            len(self._pending))
            delay, failing = FIRST_DELAY_S, False
            with self._changed:
                if self._pending.get(key) is call:
                    del self._pending[key]
                self._changed.notify_all()
