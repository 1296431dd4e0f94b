"""How the agent's links to central (feed sync and uplink) are doing, and how they wait after a failure."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from kernel.backoff import Backoff


@dataclass
class LinkState:
    """How a link to central is doing, for the API and the screens."""

    last_success_monotonic: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0

    def age_s(self, now: float | None = None) -> float | None:
        if self.last_success_monotonic is None:
            return None
        return (now or time.monotonic()) - self.last_success_monotonic


class LinkBackoff(Backoff):
    """The kernel's backoff, recording each failure and success in a `LinkState` and logging only the
    first failure of a run and the recovery, not every retry."""

    async def failed(self, state: LinkState, exc: BaseException, log: logging.Logger, message: str) -> None:
        state.consecutive_failures += 1
        state.last_error = f"{type(exc).__name__}: {exc}"
        if state.consecutive_failures == 1:  # say it once, not on every retry
            log.warning(message, extra={"error": state.last_error})
        await asyncio.sleep(self.next_delay())

    def succeeded(self, state: LinkState, log: logging.Logger, message: str, **extra: object) -> None:
        if state.consecutive_failures:
            log.info(message, extra=extra)
        state.consecutive_failures = 0
        state.last_error = None
        state.last_success_monotonic = time.monotonic()
        self.reset()
