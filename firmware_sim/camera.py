"""A camera over a conveyor: a parcel with a waybill label (Code 128) in a 1280×720 frame.

The barcode comes from zxing-cpp's own writer (`create_barcode(...).to_image()`), so no imaging
dependency beyond OpenCV and numpy. The frame is served as HTTP MJPEG (multipart/x-mixed-replace,
what cheap IP cameras send) on a loopback port, or written to an MJPG .avi file; both are what
`devices.transports.video` reads.

What the camera shows can differ from what the scanner reads: `set_code()` changes the parcel (both
agree), `swap_label()` changes only the label in the picture — a swapped label, the fraud the camera
is there to catch. A `neighbour` label (another parcel's, Code 128 or any zxing format) can sit in
the lower right corner, outside `label_box`, to exercise a region of interest and format limits.
Frames are static and deterministic (no clock on screen), so the same scene gives the same JPEG.

`stop()` / `start()` take the HTTP camera away and bring it back on the same port, dropping clients
as a camera losing power would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer
import zxingcpp

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 1280, 720
BOUNDARY = b"bondgateframe"
FONT = cv2.FONT_HERSHEY_SIMPLEX


def barcode_image(code: str, fmt: str = "Code128", *, module_px: int = 3) -> np.ndarray:
    """A grayscale barcode with its quiet zones, `module_px` pixels per module."""
    barcode = zxingcpp.create_barcode(code, zxingcpp.barcode_format_from_str(fmt))
    return np.asarray(barcode.to_image(scale=module_px, add_quiet_zones=True), dtype=np.uint8)


def label_image(
    code: str, fmt: str = "Code128", *, module_px: int = 3, title: str = "BONDGATE EXPRESS"
) -> np.ndarray:
    """A white waybill label: a title, the barcode and its number in plain text (BGR)."""
    bars = barcode_image(code, fmt, module_px=module_px)
    bh, bw = bars.shape
    width, height = max(bw, 360) + 40, bh + 130
    label = np.full((height, width, 3), 250, np.uint8)
    cv2.putText(label, title, (20, 40), FONT, 0.9, (20, 20, 20), 2, cv2.LINE_AA)
    x = (width - bw) // 2
    label[60 : 60 + bh, x : x + bw] = cv2.cvtColor(bars, cv2.COLOR_GRAY2BGR)
    cv2.putText(label, code[:40], (20, 60 + bh + 45), FONT, 0.8, (20, 20, 20), 2, cv2.LINE_AA)
    cv2.rectangle(label, (0, 0), (width - 1, height - 1), (60, 60, 60), 2)
    return label


class CameraSim:
    def __init__(
        self,
        code: str = "JD014600006123456789",
        *,
        fps: float = 25.0,
        neighbour: str | None = None,
        neighbour_format: str = "Code128",
        module_px: int = 3,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.code = code  # on the parcel: what the scanner reads
        self.shown_code = code  # on the label in the picture
        self.fps = fps
        self.neighbour = neighbour
        self.neighbour_format = neighbour_format
        self.module_px = module_px
        self.host, self.port = host, port
        self._label_box = (0, 0, 0, 0)
        self._frame: np.ndarray | None = None
        self._jpeg: bytes | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.served_frames = 0

    # --- the scene -----------------------------------------------------------------------------------
    def set_code(self, code: str) -> None:
        """A new parcel: label and scanner agree."""
        self.code = self.shown_code = code
        self._frame = self._jpeg = None

    def swap_label(self, code: str) -> None:
        """The label in the picture says `code`; the parcel (what the scanner reads) is unchanged."""
        self.shown_code = code
        self._frame = self._jpeg = None

    @property
    def label_box(self) -> tuple[int, int, int, int]:
        """x, y, w, h of the main label in the frame (a region of interest that fits it)."""
        self.frame()
        return self._label_box

    def frame(self) -> np.ndarray:
        """The current 1280×720 BGR frame (rendered once per scene)."""
        if self._frame is None:
            self._frame = self._render()
        return self._frame

    def jpeg(self) -> bytes:
        if self._jpeg is None:
            ok, buffer = cv2.imencode(".jpg", self.frame(), [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            self._jpeg = buffer.tobytes()
        return self._jpeg

    def _render(self) -> np.ndarray:
        frame = np.full((HEIGHT, WIDTH, 3), 70, np.uint8)  # the belt
        for y in range(0, HEIGHT, 48):
            cv2.line(frame, (0, y), (WIDTH, y), (55, 55, 55), 3)
        cv2.rectangle(frame, (20, 30), (760, 420), (70, 120, 170), -1)  # the parcel (cardboard)
        label = self._label(self.shown_code, "Code128", "BONDGATE EXPRESS")
        self._label_box = _paste(frame, label, 40, 60)
        if self.neighbour is not None:
            other = self._label(self.neighbour, self.neighbour_format, "OTHER PARCEL")
            lh, lw = other.shape[:2]
            _paste(frame, other, WIDTH - lw - 30, HEIGHT - lh - 30)
        cv2.putText(frame, "SIM CAM 1  LANE IN-1", (900, 40), FONT, 0.7, (230, 230, 230), 2, cv2.LINE_AA)
        return frame

    def _label(self, code: str, fmt: str, title: str) -> np.ndarray:
        """The label at `module_px`, or finer if a long code would not fit the frame."""
        for px in range(self.module_px, 0, -1):
            label = label_image(code, fmt, module_px=px, title=title)
            if label.shape[1] <= WIDTH - 80:
                return label
        raise ValueError(f"code {code[:40]!r} is too long to render in a {WIDTH}-pixel frame")

    # --- as a file -----------------------------------------------------------------------------------
    def write_video(self, path: Path, *, frames: int = 25) -> Path:
        """An MJPG .avi of `frames` frames of the current scene, at `fps`."""
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), self.fps, (WIDTH, HEIGHT))
        if not writer.isOpened():
            raise OSError(f"cannot write video {path}")
        try:
            image = self.frame()
            for _ in range(frames):
                writer.write(image)
        finally:
            writer.release()
        return path

    # --- as an HTTP MJPEG camera ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/video.mjpg"

    async def start(self) -> str:
        """Serve MJPEG on `host:port` (a free port the first time if 0, the same one after); the URL."""
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("camera simulator serving", extra={"url": self.url})
        return self.url

    async def stop(self) -> None:
        """The camera goes away: stop listening and drop every client."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._clients):
            writer.close()
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> CameraSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # any GET: one stream
            writer.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=" + BOUNDARY + b"\r\n"
                b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
            )
            period = 1.0 / self.fps
            while self._server is not None:
                jpeg = self.jpeg()
                writer.write(
                    b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
                )
                await writer.drain()
                self.served_frames += 1
                await asyncio.sleep(period)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the event loop is closing: the stream just ends
            pass
        finally:
            self._clients.discard(writer)
            writer.close()


def _paste(frame: np.ndarray, image: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    h, w = image.shape[:2]
    frame[y : y + h, x : x + w] = image
    return x, y, w, h


def command(
    code: Annotated[str, typer.Option(help="waybill number on the parcel")] = "JD014600006123456789",
    shown: Annotated[str | None, typer.Option(help="code on the label in the picture (a label swap)")] = None,
    port: Annotated[int, typer.Option(help="HTTP port for MJPEG (0 picks a free one)")] = 8081,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    output: Annotated[Path | None, typer.Option(help="write an MJPG .avi here instead of serving")] = None,
    frames: Annotated[int, typer.Option(help="frames to write with --output")] = 50,
    fps: Annotated[float, typer.Option(help="frames per second")] = 25.0,
) -> None:
    """Serve a simulated parcel camera as HTTP MJPEG until Ctrl-C, or write it to a video file."""
    sim = CameraSim(code, fps=fps, host=host, port=port)
    if shown is not None:
        sim.swap_label(shown)
    if output is not None:
        sim.write_video(output, frames=frames)
        typer.echo(f"wrote {frames} frames of {sim.shown_code} to {output}")
        return

    async def serve() -> None:
        async with sim:
            typer.echo(f"camera at {sim.url}")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
