"""A weighbridge indicator on a pseudo-terminal: Toledo continuous output of a truck scale, with the
weight a truck puts on the platform as it drives on, stops, stands and drives off.

It is the scale simulator (`ScaleSim`: the pty, the by-id symlink across replug, the stream at
`rate_hz`, the faults — noise, silence, unplug — and the host's Z/T/C) with its own load: a plan of
what each coming frame shows. `drive_on(gross)` plans the truck's axles rolling onto the platform
one by one (the weight rises in steps, motion bit set), the truck braking (the weight oscillates
about the gross, damped), and the indicator's motion detection holding the motion bit for
`settle_s` after the weight stops changing; then every frame is the gross, stable, for as long as
the truck stands there. `drive_off()` plans the reverse, down to zero and stable. A truck heavier
than `capacity_kg` + 9 divisions reads over range (SWB bit 2), as an overloaded indicator does.

Frames, not seconds: the plan advances one step per frame sent, so what the driver sees does not
depend on how fast the test machine is (seconds given here become frames at `rate_hz`), and an
unplugged indicator's truck waits where it was.

Every weight is a whole number of divisions (`division_kg`: 1, 2, 5, 10, 20, 50 or 100 kg; OIML
class III weighbridges use 10 or 20 kg), sent as the Toledo format says: the decimal point code
(XXX, XX0 for tens, XX00 for hundreds: the dummy zeros are not sent) and the increment ×1/×2/×5.
The frames are built by `devices.protocols.toledo.encode_continuous`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final, Literal

import typer

from devices.protocols import toledo
from firmware_sim.scale import ScaleSim

# division → (decimals of the format: 0 XXX, -1 XX0, -2 XX00; increment ×1/×2/×5)
DIVISIONS: Final[dict[int, tuple[int, Literal[1, 2, 5]]]] = {
    1: (0, 1),
    2: (0, 2),
    5: (0, 5),
    10: (-1, 1),
    20: (-1, 2),
    50: (-1, 5),
    100: (-2, 1),
}
STEER_SHARE: Final = Decimal("0.15")  # of the gross on the steer axle; the rest shared by the others


class WeighbridgeSim(ScaleSim):
    """One weighbridge. `async with WeighbridgeSim(link=tmp/"bridge0") as bridge:` then give
    `bridge.path` to a `ScaleDriver` in toledo-continuous mode; `bridge.drive_on(Decimal(49020))`."""

    def __init__(
        self,
        *,
        link: str | Path | None = None,
        division_kg: int = 20,
        capacity_kg: Decimal | int = 60_000,
        rate_hz: float = 10.0,
        checksum: bool = False,
        axle_s: float = 0.6,
        oscillation_s: float = 0.8,
        settle_s: float = 1.0,
        oscillation_kg: Decimal | int | None = None,
    ) -> None:
        if division_kg not in DIVISIONS:
            raise ValueError(
                f"division_kg must be one of {', '.join(map(str, DIVISIONS))}, not {division_kg}"
            )
        super().__init__(
            "toledo-continuous",
            link=link,
            unit="kg",
            decimals=0,
            capacity_kg=Decimal(capacity_kg),
            underload_kg=Decimal(-20 * division_kg),
            rate_hz=rate_hz,
            checksum=checksum,
        )
        self.division_kg = division_kg
        self._decimals, self._increment = DIVISIONS[division_kg]
        self.axle_s = axle_s
        self.oscillation_s = oscillation_s
        self.settle_s = settle_s
        self.oscillation_kg = Decimal(oscillation_kg if oscillation_kg is not None else 15 * division_kg)
        self._plan: deque[tuple[Decimal, bool]] = deque()  # (kg on the platform, motion) per frame to come
        self._until_settled = False  # set_load(settle_after=None): in motion until settle()
        self.stable_frames = 0  # stable frames sent since the plan last ran out (0 while in motion)
        self.sent_frames: list[tuple[Decimal, bool]] = []  # (kg shown, motion) of every frame, for tests

    # --- the truck ------------------------------------------------------------------------------
    def drive_on(
        self, gross_kg: Decimal | int | str, *, axles: int = 5, settle_s: float | None = None
    ) -> int:
        """Plan a truck of `gross_kg` driving onto the platform and stopping; returns the frames
        planned (after them, the gross is stable for as long as the truck stands)."""
        gross = Decimal(gross_kg)
        start = self._load
        self._axles(start, [start + gross * share for share in _cumulative(axles)])
        wobble = self.oscillation_kg
        for k in range(self._frames(self.oscillation_s)):  # braking: a damped swing about the gross
            self._plan.append((start + gross + wobble * (-1) ** k * Decimal("0.7") ** k, True))
        self._hold(start + gross, settle_s)
        return len(self._plan)

    def drive_off(self, *, axles: int = 5, settle_s: float | None = None) -> int:
        """Plan what stands on the platform driving off, front axle first, to an empty platform;
        returns the frames planned."""
        load = self._load
        self._axles(load, [load - load * share for share in _cumulative(axles)])
        self._hold(Decimal(0), settle_s)
        return len(self._plan)

    def add_load(self, kg: Decimal | int | str, *, settle_s: float | None = None) -> int:
        """Plan a step of `kg` (negative: off), in motion, then stable: a second vehicle rolling on
        close behind, a person stepping on. Returns the frames planned."""
        start = self._load
        self._axles(start, [start + Decimal(kg)])
        self._hold(start + Decimal(kg), settle_s)
        return len(self._plan)

    @property
    def load_kg(self) -> Decimal:
        """What stands on the platform once the plan has run (the truck parked, or nothing)."""
        return self._load

    @property
    def settled(self) -> bool:
        """The plan has run and a stable frame has been sent since."""
        return not self.moving and self.stable_frames > 0

    async def wait_settled(self, timeout: float) -> None:
        """Until a stable frame has gone out after the plan ran (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while not self.settled:
                await asyncio.sleep(1 / self.rate_hz)

    def shown(self, kg: Decimal) -> Decimal:
        """`kg` as the indicator shows it: a whole number of divisions (round half even)."""
        divisions = (kg / self.division_kg).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        return divisions * self.division_kg

    # --- the scale simulator's hooks ------------------------------------------------------------
    def set_load(
        self, kg: Decimal | int | str, *, settle_after: int | None = 3, settle_s: float | None = None
    ) -> None:
        """Whatever is on the platform becomes `kg`: `settle_after` frames in motion, then stable
        (None: in motion until `settle()`, or until `settle_s` has passed)."""
        self._plan.clear()
        self._load = Decimal(kg)
        self._plan.extend([(self._load, True)] * (settle_after or 0))
        self._until_settled = settle_after is None
        if settle_s is not None:
            asyncio.get_running_loop().call_later(settle_s, self.settle)

    def settle(self) -> None:
        """Stop the motion now: the next frame is stable at the load the plan was heading for."""
        self._plan.clear()
        self._until_settled = False

    @property
    def moving(self) -> bool:
        return bool(self._plan) or self._until_settled

    def _physical(self) -> Decimal:
        return self._plan[0][0] if self._plan else self._load

    def continuous_frame(self) -> bytes:
        """The next frame: the plan's next step, or what stands on the platform."""
        kg, motion = self._plan.popleft() if self._plan else (self._load, self._until_settled)
        self.stable_frames = 0 if motion else self.stable_frames + 1
        self.reports += 1
        gross = self.shown(kg - self._zero)
        out_of_range = gross > self.capacity_kg + 9 * self.division_kg or gross < self.underload_kg
        tare = self.shown(self._tare)
        shown = gross - tare if tare else gross
        self.sent_frames.append((shown, motion))
        limit = Decimal(999_999).scaleb(-self._decimals)
        return toledo.encode_continuous(
            max(min(shown, limit), -limit),
            decimals=self._decimals,
            increment=self._increment,
            tare=min(abs(tare), limit),
            net=bool(tare),
            motion=motion,
            out_of_range=out_of_range,
            with_checksum=self.checksum,
        )

    # --- the plan -------------------------------------------------------------------------------
    def _axles(self, start: Decimal, loads: list[Decimal]) -> None:
        """The weight steps from `start` through `loads`, one per axle: each ramps over the first half
        of `axle_s` (the axle rolling onto the platform) and holds for the rest, in motion."""
        steps = self._frames(self.axle_s)
        before = start
        for after in loads:
            for i in range(1, steps + 1):
                self._plan.append((before + (after - before) * min(2 * i, steps) / steps, True))
            before = after

    def _hold(self, load: Decimal, settle_s: float | None) -> None:
        """The weight no longer changes; the motion bit stays for the settle time, then stable."""
        self._plan.extend([(load, True)] * self._frames(self.settle_s if settle_s is None else settle_s))
        self._load = load
        self._until_settled = False

    def _frames(self, seconds: float) -> int:
        return max(1, math.ceil(seconds * self.rate_hz))


def _cumulative(axles: int) -> list[Decimal]:
    """The share of the gross on the platform as each axle rolls on: the steer axle carries less."""
    if axles < 1:
        raise ValueError("a truck has at least one axle")
    if axles == 1:
        return [Decimal(1)]
    rest = (1 - STEER_SHARE) / (axles - 1)
    return [STEER_SHARE + rest * i for i in range(axles - 1)] + [Decimal(1)]


# --- python -m firmware_sim.weighbridge -----------------------------------------------------------


def command(
    gross: str = typer.Option("49020", help="the truck's gross weight, kg"),
    link: Path | None = typer.Option(None, help="a symlink to the pty (stays valid across replug)"),
    division: int = typer.Option(20, help="kg per division: 1, 2, 5, 10, 20, 50 or 100"),
    capacity: int = typer.Option(60_000, help="kg; above it (+ 9 divisions) the indicator reads over range"),
    rate: float = typer.Option(10.0, help="frames per second"),
    settle_s: float = typer.Option(1.0, help="seconds the motion bit stays on after the weight stops"),
    parked_s: float = typer.Option(10.0, help="seconds the truck stands on the platform"),
    every: float = typer.Option(5.0, help="seconds between trucks"),
    count: int = typer.Option(0, min=0, help="trucks to weigh (0: until interrupted)"),
    checksum: bool = typer.Option(False, help="append the checksum byte"),
) -> None:
    """Run a simulated weighbridge indicator (Toledo continuous output) with trucks driving over it,
    and print the path to give the scale driver."""

    async def serve() -> None:
        bridge = WeighbridgeSim(
            link=link,
            division_kg=division,
            capacity_kg=capacity,
            rate_hz=rate,
            checksum=checksum,
            settle_s=settle_s,
        )
        async with bridge:
            typer.echo(bridge.path)
            trucks = 0
            while not count or trucks < count:
                await asyncio.sleep(every)
                frames = bridge.drive_on(Decimal(gross))
                await asyncio.sleep(frames / rate + parked_s)
                bridge.drive_off()
                trucks += 1

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    typer.run(command)
