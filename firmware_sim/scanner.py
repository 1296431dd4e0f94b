"""A serial barcode scanner on a pseudo-terminal or on a TCP port (a serial device server, for the
driver's `socket://host:port`), scripted by the test: scans, no-reads, double reads, frames split
across writes, line noise, and a cable pulled and put back.

Why scripted and not timed: tests say what the scanner sends and wait for the driver to report it;
nothing here fires on a clock except `split_scan`'s small gap between parts (which must merely be
shorter than the driver's partial timeout) and the CLI's `--every`. Every frame is built with the
protocol module's own `encode_frame`, whose bytes tests/devices check against PROTOCOLS.md.

Replug keeps the driver's address: on a pty give `link` (e.g. tmp_dir/"scanner0") and the simulator
points that symlink at each new pty, as udev's /dev/serial/by-id links do (unplug removes it); on
TCP the port stays the same. Bytes sent while no driver is connected wait for it, as they do in a
pty's buffer or a device server's serial buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import socket
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Final

import typer

from devices.protocols.scanner import CR, CRLF, LF, encode_frame
from firmware_sim.pty_pair import PtyPair

log = logging.getLogger(__name__)

# bytes no scanner sends as data: each noise burst starts with one, so it is never a valid frame
CONTROL_NOISE: Final = bytes(b for b in range(0x20) if b not in b"\r\n\x04\x1d\x1e") + b"\x7f"
MAX_PENDING: Final = 1 << 16  # bytes kept for a TCP client that has not connected yet


class ScannerSim:
    """One scanner. `async with ScannerSim(link=tmp/"scanner0") as sim:` then give `sim.url` to the
    driver. `tcp=0` serves TCP on a free port instead of a pty."""

    def __init__(
        self,
        *,
        link: str | Path | None = None,
        tcp: int | None = None,
        host: str = "127.0.0.1",
        aim: str | None = "]C0",
        prefix: bytes = b"",
        suffix: bytes = b"",
        terminator: bytes = CR,
        noread_token: bytes = b"NOREAD",
        seed: int | None = None,
    ) -> None:
        if link is not None and tcp is not None:
            raise ValueError("a scanner is on a pty (link) or on TCP, not both")
        self.link = Path(link) if link is not None else None
        self.tcp = tcp
        self.host = host
        self.aim = aim
        self.prefix = prefix
        self.suffix = suffix
        self.terminator = terminator
        self.noread_token = noread_token
        self._random = random.Random(seed)
        self._pair: PtyPair | None = None
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._pending = bytearray()
        self._plugged = False
        # what happened, for tests
        self.sent = bytearray()  # every byte written, in order
        self.dropped = 0  # bytes nobody could take
        self.received = bytearray()  # bytes the driver sent (scanners are mostly told nothing)

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self._plug()
        if self._serving is not None:
            await self._serving  # listening already; this makes the server object exist

    async def stop(self) -> None:
        self._unplug()

    async def __aenter__(self) -> ScannerSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """What the driver is configured with: the symlink or pty path, or socket://host:port."""
        if self.tcp is not None:
            return f"socket://{self.host}:{self.tcp}"
        if self.link is not None:
            return str(self.link)
        if self._pair is None:
            raise RuntimeError("scanner simulator is not plugged in")
        return self._pair.path

    @property
    def plugged(self) -> bool:
        return self._plugged

    @property
    def connected(self) -> int:
        """TCP clients connected now (a pty cannot tell)."""
        return len(self._clients)

    def unplug(self) -> None:
        """Pull the cable: the driver's reads fail; the by-id symlink disappears, TCP clients are cut."""
        self._unplug()

    def replug(self) -> None:
        """A new pty behind the same symlink (as a re-enumerated USB adapter), or the same TCP port."""
        self._unplug()
        self._plug()

    def _plug(self) -> None:
        if self.tcp is not None:
            self._listen()
        else:
            self._open_pty()
        self._plugged = True
        log.info("scanner simulator plugged", extra={"url": self.url})

    def _unplug(self) -> None:
        if not self._plugged:
            return
        self._plugged = False
        self._pending.clear()
        if self._pair is not None:
            pair, self._pair = self._pair, None
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(pair.master)
            pair.close()
            if self.link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
        if self._serving is not None:
            self._serving.cancel()
            self._serving = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for writer in self._clients:
            writer.transport.abort()
        self._clients.clear()
        log.info("scanner simulator unplugged", extra={"tcp": self.tcp, "link": str(self.link)})

    # --- pty ------------------------------------------------------------------------------------
    def _open_pty(self) -> None:
        pair = PtyPair.open()
        os.set_blocking(pair.master, False)  # never block the loop when nobody reads the other side
        self._pair = pair
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(pair.path)
            tmp.replace(self.link)  # atomic re-point
        asyncio.get_running_loop().add_reader(pair.master, self._on_pty_readable)

    def _on_pty_readable(self) -> None:
        if self._pair is None:
            return
        with contextlib.suppress(OSError):  # BlockingIOError, or nobody on the other side
            self.received += os.read(self._pair.master, 4096)

    # --- TCP ------------------------------------------------------------------------------------
    def _listen(self) -> None:
        """Bind and listen now (so replug is synchronous and connections queue in the backlog);
        asyncio starts accepting them in a task."""
        sock = socket.create_server((self.host, self.tcp or 0))  # SO_REUSEADDR: the same port again
        self.tcp = sock.getsockname()[1]
        self._sock = sock
        self._serving = asyncio.get_running_loop().create_task(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await asyncio.start_server(self._on_client, sock=sock)
        self._sock = None  # the server owns it now

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._plugged:
            writer.transport.abort()
            return
        self._clients.add(writer)
        log.info("scanner simulator client connected", extra={"tcp": self.tcp})
        if self._pending:
            writer.write(bytes(self._pending))
            self._pending.clear()
        try:
            while data := await reader.read(4096):
                self.received += data
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.transport.abort()

    # --- the wire -------------------------------------------------------------------------------
    def send(self, data: bytes) -> bytes:
        """Raw bytes, as they are. Returns them."""
        self.sent += data
        if not self._plugged:
            self.dropped += len(data)
        elif self._pair is not None:
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._pair.master, view) :]
            except OSError:  # BlockingIOError: the pty buffer is full; or unplugged under us
                self.dropped += len(view)
        elif self._clients:
            for writer in self._clients:
                writer.write(data)
        elif len(self._pending) + len(data) <= MAX_PENDING:
            self._pending += data
        else:
            self.dropped += len(data)
        return data

    def frame(
        self,
        code: str,
        *,
        aim: str | None = None,
        terminator: bytes | None = None,
        prefix: bytes | None = None,
        suffix: bytes | None = None,
    ) -> bytes:
        """The bytes of one scan. Options left None take the simulator's settings; `aim=""`: none."""
        return encode_frame(
            code,
            aim=self.aim if aim is None else (aim or None),
            prefix=self.prefix if prefix is None else prefix,
            suffix=self.suffix if suffix is None else suffix,
            terminator=self.terminator if terminator is None else terminator,
        )

    def scan(
        self,
        code: str,
        aim: str | None = None,
        terminator: bytes | None = None,
        prefix: bytes | None = None,
        suffix: bytes | None = None,
    ) -> bytes:
        """One read of `code`, e.g. `scan("JD0146…", aim="]C0", terminator=b"\\r\\n")`."""
        return self.send(self.frame(code, aim=aim, terminator=terminator, prefix=prefix, suffix=suffix))

    def double_read(self, code: str, aim: str | None = None) -> bytes:
        """The same label read twice in a row (two writes), as scanners do when a parcel lingers."""
        data = self.frame(code, aim=aim)
        self.send(data)
        self.send(data)
        return data + data

    async def split_scan(
        self, code: str, parts: int = 3, *, aim: str | None = None, gap_s: float = 0.01
    ) -> bytes:
        """One frame in `parts` writes with `gap_s` between them (keep it under the partial timeout)."""
        data = self.frame(code, aim=aim)
        parts = max(1, min(parts, len(data)))
        bounds = [round(i * len(data) / parts) for i in range(parts + 1)]
        for i, (start, end) in enumerate(itertools.pairwise(bounds)):
            if i:
                await asyncio.sleep(gap_s)
            self.send(data[start:end])
        return data

    def noread(self) -> bytes:
        return self.send(self.prefix + self.noread_token + self.suffix + self.terminator)

    def noise(self, n: int = 16, *, terminate: bool = True) -> bytes:
        """`n` bytes of line noise (the first always a control byte, so it is never a valid frame),
        then a terminator so the next scan starts clean; `terminate=False` glues it to the next."""
        n = max(n, 1)
        data = bytes([self._random.choice(CONTROL_NOISE)]) + self._random.randbytes(n - 1).translate(
            _NO_LINE_ENDS
        )
        return self.send(data + (self.terminator if terminate else b""))


_NO_LINE_ENDS: Final = bytes.maketrans(b"\r\n", b"\x00\x00")


# --- bondgate sim scanner -------------------------------------------------------------------------


class Terminator(StrEnum):
    CR = "cr"
    LF = "lf"
    CRLF = "crlf"


_TERMINATOR_BYTES: Final = {Terminator.CR: CR, Terminator.LF: LF, Terminator.CRLF: CRLF}


def command(
    tcp: int | None = typer.Option(
        None, help="serve socket://127.0.0.1:PORT (0: any free port) instead of a pty"
    ),
    link: Path | None = typer.Option(None, help="a symlink to the pty (stays valid across replug)"),
    codes: Path | None = typer.Option(None, help="a file of codes, one per line, sent in turn (cycled)"),
    every: float = typer.Option(2.0, min=0.001, help="seconds between scans"),
    count: int = typer.Option(0, min=0, help="stop after this many scans (0: run until interrupted)"),
    aim: str = typer.Option("]C0", help="AIM symbology identifier sent before each code ('' for none)"),
    terminator: Terminator = typer.Option(Terminator.CR, help="end of each frame"),
    prefix: str = typer.Option("", help="bytes before each frame (e.g. $'\\x02')"),
    suffix: str = typer.Option("", help="bytes before the terminator"),
) -> None:
    """Run a simulated barcode scanner and print the path (or socket:// URL) to give the driver."""
    if codes is not None:
        lines = [line.strip() for line in codes.read_text(encoding="utf-8").splitlines()]
        source: Iterator[str] = itertools.cycle([line for line in lines if line] or ["EMPTY"])
    else:  # JD-style waybills: JD + 18 digits, counting up
        source = (f"JD{14600006000000000 + i:018d}" for i in itertools.count(1))

    async def serve() -> None:
        sim = ScannerSim(
            link=link,
            tcp=tcp,
            aim=aim or None,
            prefix=prefix.encode(),
            suffix=suffix.encode(),
            terminator=_TERMINATOR_BYTES[terminator],
        )
        async with sim:
            typer.echo(sim.url)
            for sent, code in enumerate(source, 1):
                await asyncio.sleep(every)
                sim.scan(code)
                if count and sent >= count:
                    break

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
