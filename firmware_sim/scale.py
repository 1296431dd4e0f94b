"""A weighing scale on a pseudo-terminal: MT-SICS, Toledo 8217 (answers W) or Toledo continuous
output (streams frames), with the faults a park sees — overload, underload, ES/ET/EL replies,
noise on the line, silence, and a USB cable pulled and put back.

Why settling counts readings instead of seconds: tests must not depend on timing. After
`set_load(kg, settle_after=N)` the next N weight reports are dynamic (moving toward the load), then
the scale is stable; `settle_after=None` stays in motion until `settle()`. `settle_s` adds a
wall-clock settle for demos. Every byte is built with the protocol modules' own encoders, and
`tests/devices` checks those encoders against the documented bytes, so the simulator cannot drift
from PROTOCOLS.md unnoticed.

Replug keeps the driver's path: give `link` (e.g. tmp_dir/"scale0") and the simulator points that
symlink at each new pty, as udev's /dev/serial/by-id links do; unplug removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Final, Literal

import typer

from devices.protocols import mt_sics as sics
from devices.protocols import toledo
from firmware_sim.pty_pair import PtyPair

log = logging.getLogger(__name__)

Protocol = Literal["mt-sics", "toledo-8217", "toledo-continuous"]
Fault = Literal["ES", "ET", "EL", "silent", "noise"]
NOISE: Final = b"\x00\xff~#noise#~\x1b"


class ScaleSim:
    """One scale. Use `async with ScaleSim(...) as sim:` (or `await start()` / `await stop()`)."""

    def __init__(
        self,
        protocol: Protocol,
        *,
        link: str | Path | None = None,
        unit: str = "kg",
        decimals: int = 3,
        capacity_kg: Decimal = Decimal(150),
        underload_kg: Decimal = Decimal(-2),
        rate_hz: float = 20.0,
        checksum: bool = False,
        serial: str = "0123456789",
    ) -> None:
        if protocol != "mt-sics" and unit not in ("kg", "lb"):
            raise ValueError(f"{protocol} reports kg or lb, not {unit}")
        if unit not in sics.KG_PER_UNIT:
            raise ValueError(f"unknown unit {unit!r}")
        self.protocol: Protocol = protocol
        self.link = Path(link) if link is not None else None
        self.unit = unit
        self.decimals = decimals
        self.capacity_kg = capacity_kg
        self.underload_kg = underload_kg
        self.rate_hz = rate_hz
        self.checksum = checksum
        self.serial = serial
        self._fault: Fault | None = None
        self._pair: PtyPair | None = None
        self._inbox = bytearray()
        self._stream: asyncio.Task[None] | None = None  # continuous output, or MT-SICS SIR
        self._settle_timer: asyncio.TimerHandle | None = None
        # the physical state
        self._load = Decimal(0)
        self._moving_from = Decimal(0)
        self._motion_left: int | None = 0  # dynamic reports still to come; None: until settle()
        self._motion_step = 0
        self._zero = Decimal(0)
        self._tare = Decimal(0)
        # what happened, for tests
        self.reports = 0  # weight reports sent (replies or frames)
        self.received: list[str] = []  # commands, in order
        self.dropped = 0  # bytes the pty would not take (nobody reading)
        # MT-SICS: the reply leaves this long after the command arrived (weighed on arrival), as a
        # slow balance or a busy converter does; 0 answers at once
        self.reply_delay_s = 0.0
        self.delay_next_reply_s = 0.0  # the next reply only (one late answer), then back to the above
        self._replies_until = 0.0  # when the last delayed reply leaves

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._plug()

    async def stop(self) -> None:
        self._unplug()

    async def __aenter__(self) -> ScaleSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def path(self) -> str:
        """What the driver opens: the symlink if there is one, else the current pty."""
        if self.link is not None:
            return str(self.link)
        if self._pair is None:
            raise RuntimeError("scale simulator is not plugged in")
        return self._pair.path

    @property
    def plugged(self) -> bool:
        return self._pair is not None

    def unplug(self) -> None:
        """Pull the cable: the driver's reads fail, and the by-id symlink disappears."""
        self._unplug()

    def replug(self) -> None:
        """A new pty (as a re-enumerated USB adapter gets a new ttyUSBn), the same symlink path."""
        self._unplug()
        self._plug()

    def _plug(self) -> None:
        loop = asyncio.get_running_loop()
        pair = PtyPair.open()
        os.set_blocking(pair.master, False)  # never block the loop when nobody reads the other side
        self._pair = pair
        self._inbox.clear()
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(pair.path)
            tmp.replace(self.link)  # atomic re-point
        loop.add_reader(pair.master, self._on_readable)
        if self.protocol == "toledo-continuous":
            self._stream = loop.create_task(self._stream_continuous())
        log.info("scale simulator plugged", extra={"protocol": self.protocol, "path": self.path})

    def _unplug(self) -> None:
        self._stop_stream()
        pair, self._pair = self._pair, None
        if pair is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(pair.master)
        pair.close()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        log.info("scale simulator unplugged", extra={"protocol": self.protocol})

    def _stop_stream(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    # --- the load and the faults ----------------------------------------------------------------
    def set_load(
        self, kg: Decimal | int | str, *, settle_after: int | None = 3, settle_s: float | None = None
    ) -> None:
        """Put `kg` on the platform: `settle_after` dynamic reports first (None: until settle())."""
        self._moving_from = self._physical()
        self._load = Decimal(kg)
        self._motion_left = settle_after
        self._motion_step = 0
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        if settle_s is not None:
            self._settle_timer = asyncio.get_running_loop().call_later(settle_s, self.settle)

    def settle(self) -> None:
        self._motion_left = 0

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        if fault in ("ES", "ET", "EL") and self.protocol != "mt-sics":
            raise ValueError(f"{fault} is an MT-SICS reply; use 'noise' for {self.protocol}")
        self._fault = fault

    @property
    def moving(self) -> bool:
        return self._motion_left != 0

    def _physical(self) -> Decimal:
        """The load the cell sees now: moving halfway closer on each dynamic report."""
        if not self.moving:
            return self._load
        return self._load + (self._moving_from - self._load) / 2 ** (self._motion_step + 1)

    def _report(self) -> tuple[Decimal, bool]:
        """One weight report: (kg shown, stable); advances motion by one report."""
        stable = not self.moving
        gross = self._physical() - self._zero
        if not stable:
            self._motion_step += 1
            if self._motion_left is not None:
                self._motion_left -= 1
        self.reports += 1
        return (gross - self._tare if self._tare else gross), stable

    def _range(self) -> Literal["over", "under"] | None:
        gross = self._physical() - self._zero
        if gross > self.capacity_kg:
            return "over"
        if gross < self.underload_kg:
            return "under"
        return None

    def _in_unit(self, kg: Decimal) -> Decimal:
        """kg as the display shows it: in the scale's unit, at its resolution."""
        value = kg / sics.KG_PER_UNIT[self.unit]
        return value.quantize(Decimal(1).scaleb(-self.decimals), rounding=ROUND_HALF_EVEN)

    # --- the wire -------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self._pair is None or self._fault == "silent":
            return
        if self._fault == "noise":
            data = NOISE + (b"\r\n" if self.protocol == "mt-sics" else b"") + data
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._pair.master, view) :]
        except BlockingIOError:
            self.dropped += len(view)
        except OSError:
            self.dropped += len(view)  # unplugged under us

    def _on_readable(self) -> None:
        if self._pair is None:
            return
        try:
            chunk = os.read(self._pair.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # nobody on the other side
        self._inbox += chunk
        if self.protocol == "mt-sics":
            while (end := self._inbox.find(b"\n")) != -1:
                line = bytes(self._inbox[:end]).rstrip(b"\r").decode("ascii", "replace").strip()
                del self._inbox[: end + 1]
                if line:
                    self._mt_sics(line)
        else:
            data = bytes(self._inbox)
            self._inbox.clear()
            for byte in data.decode("ascii", "replace"):
                if not byte.isspace():
                    self._toledo(byte)

    # --- MT-SICS --------------------------------------------------------------------------------
    def _mt_sics(self, line: str) -> None:
        self.received.append(line)
        self._stop_stream()  # any command ends SIR
        if self._fault in ("ES", "ET", "EL"):
            errors: dict[str, sics.Reply] = {
                "ES": sics.SyntaxErrorReply(),
                "ET": sics.TransmissionErrorReply(),
            }
            self._reply(errors.get(self._fault, sics.LogicalErrorReply()))
            return
        word, _, arg = line.partition(" ")
        handler = {
            "S": self._sics_s,
            "SI": self._sics_si,
            "SIR": self._sics_sir,
            "Z": self._sics_z,
            "ZI": self._sics_zi,
            "T": self._sics_t,
            "TA": lambda: self._sics_ta(arg),
            "TAC": self._sics_tac,
            "@": self._sics_reset,
            "I4": lambda: self._reply(sics.ResetReply(self.serial)),  # serial number, no side effect
        }.get(word)
        if handler is None or (arg and word != "TA"):
            self._reply(sics.SyntaxErrorReply())
        else:
            handler()

    def _reply(self, reply: sics.Reply) -> None:
        data = sics.encode_reply(reply)
        delay, self.delay_next_reply_s = self.delay_next_reply_s or self.reply_delay_s, 0.0
        loop = asyncio.get_running_loop()
        # a balance answers in order: a reply never overtakes a late one before it
        at = max(loop.time() + delay, self._replies_until)
        if at > loop.time():
            self._replies_until = at
            loop.call_at(at, self._send, data)
        else:
            self._send(data)

    def _weight_reply(self, *, wait_stable: bool) -> sics.Reply:
        out = self._range()
        if out is not None:
            return sics.Overload() if out == "over" else sics.Underload()
        if wait_stable and self.moving:
            if self._motion_left is None:
                return sics.Busy()  # the balance's own stability timeout
            self._motion_left = 0  # S blocks until stable; here that is instantaneous
        kg, stable = self._report()
        return sics.WeightReply("S", "S" if stable else "D", self._in_unit(kg), self.unit)

    def _sics_s(self) -> None:
        self._reply(self._weight_reply(wait_stable=True))

    def _sics_si(self) -> None:
        self._reply(self._weight_reply(wait_stable=False))

    def _sics_sir(self) -> None:
        async def repeat() -> None:
            while True:
                self._reply(self._weight_reply(wait_stable=False))
                await asyncio.sleep(1 / self.rate_hz)

        self._stream = asyncio.get_running_loop().create_task(repeat())

    def _refusal(self) -> Literal["I", "+", "-"] | None:
        out = self._range()
        if out is not None:
            return "+" if out == "over" else "-"
        return "I" if self.moving else None

    def _sics_z(self) -> None:
        refused = self._refusal()
        if refused is None:
            self._zero, self._tare = self._physical(), Decimal(0)
        self._reply(sics.ZeroReply("Z", refused or "A"))

    def _sics_zi(self) -> None:
        out = self._range()
        if out is not None:
            self._reply(sics.ZeroReply("ZI", "+" if out == "over" else "-"))
            return
        self._zero, self._tare = self._physical(), Decimal(0)
        self._reply(sics.ZeroReply("ZI", "D" if self.moving else "S"))

    def _sics_t(self) -> None:
        refused = self._refusal()
        if refused is not None:
            self._reply(sics.TareReply("T", refused))
            return
        self._tare = self._physical() - self._zero
        self._reply(sics.TareReply("T", "S", self._in_unit(self._tare), self.unit))

    def _sics_ta(self, arg: str) -> None:
        if arg:
            preset = sics.parse_line(f"TA A {arg}".encode())
            if not isinstance(preset, sics.TareReply) or preset.kg is None:
                self._reply(sics.LogicalErrorReply("TA"))
                return
            self._tare = preset.kg
        self._reply(sics.TareReply("TA", "A", self._in_unit(self._tare), self.unit))

    def _sics_tac(self) -> None:
        self._tare = Decimal(0)
        self._reply(sics.TareReply("TAC", "A"))

    def _sics_reset(self) -> None:
        self._tare = Decimal(0)
        self._reply(sics.ResetReply(self.serial))

    # --- Toledo ---------------------------------------------------------------------------------
    def _toledo(self, command: str) -> None:
        self.received.append(command)
        if command == "W" and self.protocol == "toledo-8217":
            self._send(toledo.encode_8217_reply(self._8217_reply()))
        elif command == "Z" and self._range() is None and not self.moving:
            self._zero, self._tare = self._physical(), Decimal(0)
        elif command == "T" and self._range() is None and not self.moving:
            self._tare = self._physical() - self._zero
        elif command == "C":
            self._tare = Decimal(0)
        # anything else: a real indicator ignores it too

    def _8217_reply(self) -> toledo.Weight8217 | toledo.Status8217:
        out = self._range()
        net = bool(self._tare)
        if out is not None or self.moving:
            if self.moving:
                self._report()
            status = toledo.status_byte(
                motion=self.moving and out is None,
                over_capacity=out == "over",
                under_zero=out == "under",
                net=net,
            )
            return toledo.Status8217(status)
        kg, _ = self._report()
        return toledo.Weight8217(self._in_unit(kg), net=net)

    def continuous_frame(self) -> bytes:
        """The next continuous-output frame (one report)."""
        out = self._range()
        kg, stable = self._report()
        weight, tare = self._in_unit(kg), self._in_unit(self._tare)
        limit = Decimal(999999).scaleb(-self.decimals)
        return toledo.encode_continuous(
            max(min(weight, limit), -limit),
            decimals=self.decimals,
            unit="kg" if self.unit == "kg" else "lb",
            tare=min(abs(tare), limit),
            net=bool(self._tare),
            motion=not stable,
            out_of_range=out is not None,
            with_checksum=self.checksum,
        )

    async def _stream_continuous(self) -> None:
        while True:
            if self._fault != "silent":
                self._send(self.continuous_frame())
            await asyncio.sleep(1 / self.rate_hz)


# --- bondgate sim scale ---------------------------------------------------------------------------


class ProtocolName(StrEnum):
    MT_SICS = "mt-sics"
    TOLEDO_8217 = "toledo-8217"
    TOLEDO_CONTINUOUS = "toledo-continuous"


def command(
    protocol: ProtocolName = typer.Option(ProtocolName.MT_SICS, help="what the scale speaks"),
    load: str = typer.Option("0", help="kg on the platform"),
    settle_s: float = typer.Option(1.0, help="seconds in motion before the reading is stable"),
    link: Path | None = typer.Option(None, help="a symlink to the pty (stays valid across replug)"),
    unit: str = typer.Option("kg", help="display unit: kg, g, lb, oz (Toledo: kg or lb)"),
    decimals: int = typer.Option(3, help="decimal places shown"),
    rate: float = typer.Option(10.0, help="frames per second (toledo-continuous, SIR)"),
    checksum: bool = typer.Option(False, help="append the checksum byte (toledo-continuous)"),
) -> None:
    """Run a simulated scale on a pseudo-terminal and print the path to give the driver."""

    async def serve() -> None:
        sim = ScaleSim(
            protocol.value,
            link=link,
            unit=unit,
            decimals=decimals,
            rate_hz=rate,
            checksum=checksum,
        )
        async with sim:
            sim.set_load(Decimal(load), settle_after=None, settle_s=settle_s)
            typer.echo(sim.path)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
