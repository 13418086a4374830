"""The emulator's clock: wall time plus an offset that tests (and the admin API) can advance.

Timestamps the emulator returns are real unix seconds, so they look like Azure's. How long
simulated work takes (training, provisioning) is divided by ``speed``; ``advance(seconds)``
jumps the clock forward so tests never sleep. The offset is persisted in the store, so a
restarted emulator does not travel back in time.

The offset is bounded: one advance moves at most ``MAX_ADVANCE_SECONDS`` and the clock never
runs more than ``MAX_OFFSET_SECONDS`` ahead, so no value (1e308, NaN, Infinity) can turn every
timestamp into an overflow. A saved offset that is not such a number is refused at start with
an error naming the database file, not a traceback.
"""

from __future__ import annotations

import math
import threading
import time

from tunekeeper.emulator.store import EmulatorStateError, Store

MAX_ADVANCE_SECONDS = 366 * 24 * 3600.0  # a year per call: the longest simulated work takes days
MAX_OFFSET_SECONDS = 100 * 366 * 24 * 3600.0  # a century ahead in total


class Clock:
    def __init__(self, store: Store, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._store = store
        self._lock = threading.Lock()
        self._offset = _saved_offset(store)

    def now(self) -> float:
        """Current emulated unix time in seconds (float)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward (never backward), by a finite number of seconds up to ``MAX_ADVANCE_SECONDS``."""
        check_advance(seconds)
        with self._lock:
            if self._offset + seconds > MAX_OFFSET_SECONDS:
                raise ValueError(
                    f"the clock may run at most {MAX_OFFSET_SECONDS:.0f} seconds (a century) ahead; "
                    f"it is {self._offset:.0f} seconds ahead now"
                )
            self._offset += seconds
            self._store.set_meta("clock_offset", self._offset)

    def scaled(self, seconds: float) -> float:
        """How long ``seconds`` of simulated work takes on this clock."""
        return seconds / self.speed

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
            self._store.set_meta("clock_offset", 0.0)


def check_advance(seconds: float) -> None:
    """Raise ValueError unless ``seconds`` is a finite number from 0 to ``MAX_ADVANCE_SECONDS``."""
    if not math.isfinite(seconds):
        raise ValueError(f"seconds must be a finite number, got {seconds}")
    if seconds < 0:
        raise ValueError("the clock only moves forward")
    if seconds > MAX_ADVANCE_SECONDS:
        raise ValueError(
            f"one advance moves at most {MAX_ADVANCE_SECONDS:.0f} seconds (a year), got {seconds:g}"
        )


def _saved_offset(store: Store) -> float:
    value = store.get_meta("clock_offset", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_OFFSET_SECONDS:
        raise EmulatorStateError(
            f"the emulator's saved clock offset in {store.location} is {value!r}, not a number of seconds "
            f"from 0 to {MAX_OFFSET_SECONDS:.0f}",
            hint="the state was damaged: start with another --data-dir, or move this database away "
            "to start afresh",
        )
    return float(value)
