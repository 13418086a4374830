"""The emulator's clock: wall time plus an offset that tests (and the admin API) can advance.

Timestamps the emulator returns are real unix seconds, so they look like Azure's. How long
simulated work takes (training, provisioning) is divided by ``speed``; ``advance(seconds)``
jumps the clock forward so tests never sleep. The offset is persisted in the store, so a
restarted emulator does not travel back in time.
"""

from __future__ import annotations

import threading
import time

from tunekeeper.emulator.store import Store


class Clock:
    def __init__(self, store: Store, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._store = store
        self._lock = threading.Lock()
        self._offset = float(store.get_meta("clock_offset", 0.0))

    def now(self) -> float:
        """Current emulated unix time in seconds (float)."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward (never backward)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
            self._store.set_meta("clock_offset", self._offset)

    def scaled(self, seconds: float) -> float:
        """How long ``seconds`` of simulated work takes on this clock."""
        return seconds / self.speed

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
            self._store.set_meta("clock_offset", 0.0)
