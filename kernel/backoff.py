"""Capped exponential backoff with jitter: the one retry schedule of device sessions, supervised
tasks and the edge's links to central."""

from __future__ import annotations

import random


class Backoff:
    """Delays doubling from `initial` to `maximum`, each drawn from `jitter` × the current delay, so
    many clients that failed together do not return in step. `reset()` after a success."""

    def __init__(self, initial: float, maximum: float, jitter: tuple[float, float] = (0.5, 1.5)) -> None:
        self.initial, self.maximum = initial, maximum
        self.low, self.high = jitter
        self.delay = initial

    def next_delay(self) -> float:
        """The delay to sleep now; the next one doubles (up to `maximum`)."""
        sleep = self.delay * random.uniform(self.low, self.high)
        self.delay = min(self.delay * 2, self.maximum)
        return sleep

    def reset(self) -> None:
        self.delay = self.initial
