"""An electronic-plate (RFID) or IC-card reader on a pseudo-terminal or on a TCP port, scripted by
the test or the truck scenario: a tag or card presented (read once, or again and again while it
stays in the field), line noise, a read cut off, and the reader unplugged and plugged back.

The serial side is the scanner simulator's (`ScannerSim`: the pty or TCP server, the by-id
symlink kept across replug, bytes kept for a TCP client not yet connected); this module only says
what a reader sends. Every read is built with the protocol module's own `encode_read`.

Without a CLI subcommand of its own (`bondgate sim` lists only what the README documents), it
runs as `python -m firmware_sim.id_reader --help`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from enum import StrEnum
from pathlib import Path
from typing import Final

import typer

from devices.protocols.id_reader import Framing, encode_read
from firmware_sim.scanner import ScannerSim

# line noise no reader sends as data: it starts with a control byte, and holds no line end, STX or
# ETX, so it can neither end a line early nor open or close a frame
_NOISE_START: Final = bytes(b for b in range(0x20) if b not in b"\r\n\x02\x03")
_NOISE_CLEAN: Final = bytes.maketrans(b"\r\n\x02\x03", b"\x00\x00\x00\x00")


class IdReaderSim:
    """One reader. `async with IdReaderSim(link=tmp/"eplate0") as sim:` then give `sim.url` to the
    driver; `tcp=0` serves TCP on a free port instead of a pty."""

    def __init__(
        self,
        *,
        link: str | Path | None = None,
        tcp: int | None = None,
        host: str = "127.0.0.1",
        framing: Framing = "line",
        terminator: bytes = b"\r\n",
        lrc: bool = False,
        seed: int | None = None,
    ) -> None:
        if framing == "line" and terminator not in (b"\r", b"\n", b"\r\n"):
            raise ValueError(f"a line ends in CR, LF or CR LF, not {terminator!r}")
        self.framing: Framing = framing
        self.terminator = terminator
        self.lrc = lrc
        self._random = random.Random(seed)
        self.serial = ScannerSim(link=link, tcp=tcp, host=host, aim=None, terminator=terminator or b"\r")
        self.presented: list[str] = []  # every id presented, in order (each repeat once)

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.serial.start()

    async def stop(self) -> None:
        await self.serial.stop()

    async def __aenter__(self) -> IdReaderSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """What the driver is configured with: the symlink or pty path, or socket://host:port."""
        return self.serial.url

    @property
    def plugged(self) -> bool:
        return self.serial.plugged

    @property
    def sent(self) -> bytes:
        return bytes(self.serial.sent)

    def unplug(self) -> None:
        """Pull the cable: the driver's reads fail; the by-id symlink disappears, TCP clients are cut.
        What is presented while unplugged is lost, as it is on a real reader."""
        self.serial.unplug()

    def replug(self) -> None:
        """A new pty behind the same symlink (as a re-enumerated USB adapter), or the same TCP port."""
        self.serial.replug()

    # --- the wire -------------------------------------------------------------------------------
    def frame(self, id_: str) -> bytes:
        """The bytes of one read of `id_`."""
        return encode_read(id_, framing=self.framing, terminator=self.terminator, with_lrc=self.lrc)

    def present(self, id_: str, *, times: int = 1) -> bytes:
        """A tag or card in the field: read `times` times in a row (a UHF reader repeats a tag in
        its field; the driver reports it once). Returns the bytes sent."""
        data = self.frame(id_) * max(times, 1)
        self.presented.append(id_)
        return self.serial.send(data)

    def cut(self, id_: str, keep: int | None = None) -> bytes:
        """The first `keep` bytes of a read (default: half), and nothing after: the driver must never
        take the part for an id."""
        data = self.frame(id_)
        return self.serial.send(data[: len(data) // 2 if keep is None else keep])

    def noise(self, n: int = 16, *, terminate: bool = True) -> bytes:
        """`n` bytes of line noise (never an id, never a line end or frame boundary), then the
        terminator (line framing) so that the next read starts clean."""
        n = max(n, 1)
        data = bytes([self._random.choice(_NOISE_START)]) + self._random.randbytes(n - 1).translate(
            _NOISE_CLEAN
        )
        end = self.terminator if terminate and self.framing == "line" else b""
        return self.serial.send(data + end)

    def send(self, data: bytes) -> bytes:
        """Raw bytes, as they are."""
        return self.serial.send(data)


# --- python -m firmware_sim.id_reader -------------------------------------------------------------


class Terminator(StrEnum):
    CR = "cr"
    LF = "lf"
    CRLF = "crlf"
    NONE = "none"


_TERMINATOR_BYTES: Final = {
    Terminator.CR: b"\r",
    Terminator.LF: b"\n",
    Terminator.CRLF: b"\r\n",
    Terminator.NONE: b"",
}


def command(
    ids: list[str] = typer.Argument(..., help="ids presented in turn (cycled): EPCs, card UIDs or numbers"),
    tcp: int | None = typer.Option(None, help="serve socket://127.0.0.1:PORT (0: any port), not a pty"),
    link: Path | None = typer.Option(None, help="a symlink to the pty (stays valid across replug)"),
    every: float = typer.Option(3.0, min=0.001, help="seconds between reads"),
    count: int = typer.Option(0, min=0, help="stop after this many reads (0: run until interrupted)"),
    stx_etx: bool = typer.Option(False, help="frame each read STX id ETX instead of a line"),
    lrc: bool = typer.Option(False, help="a check byte after ETX (with --stx-etx)"),
    terminator: Terminator = typer.Option(Terminator.CRLF, help="end of each line (after a frame: optional)"),
) -> None:
    """Run a simulated e-plate / IC-card reader and print the path (or socket:// URL) for the driver."""

    async def serve() -> None:
        sim = IdReaderSim(
            link=link,
            tcp=tcp,
            framing="stx-etx" if stx_etx else "line",
            terminator=_TERMINATOR_BYTES[terminator],
            lrc=lrc,
        )
        async with sim:
            typer.echo(sim.url)
            for sent, id_ in enumerate(itertools.cycle(ids), 1):
                await asyncio.sleep(every)
                sim.present(id_)
                if count and sent >= count:
                    break

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    typer.run(command)
