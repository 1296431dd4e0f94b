"""How often a repeated log line is written: a token bucket per subject (a device's state changes, a
sensor's rejections). `burst` lines at once, then one per `every` seconds; the line that follows a
quiet spell says how many were left out. Time is passed in, so tests drive it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LogLimit:
    every: float
    burst: int = 1
    _tokens: float | None = None  # None: nothing logged yet, a full bucket
    _at: float = 0.0
    _left_out: int = 0

    def should_log(self, now: float) -> tuple[bool, int]:
        """(write this line?, how many were left out before it)."""
        tokens = (
            self.burst
            if self._tokens is None
            else min(self.burst, self._tokens + (now - self._at) / self.every)
        )
        self._at = now
        if tokens < 1:
            self._tokens = tokens
            self._left_out += 1
            return False, 0
        self._tokens = tokens - 1
        left_out, self._left_out = self._left_out, 0
        return True, left_out
