"""A video source for asyncio: one OpenCV capture in one dedicated thread, always holding the latest frame.

Sources: a device index (`0`) or path (`/dev/video0`), a video file (played in a loop by rewinding
with `CAP_PROP_POS_FRAMES 0`, paced at the file's frame rate), or a stream URL (`rtsp://…`, an HTTP
MJPEG `http://…`), opened with the FFMPEG backend and its open/read timeouts.

Why a grabbing thread rather than `to_thread(cap.read)` on demand: a live source queues frames, so a
read on trigger would return one taken *before* the parcel arrived. The thread reads continuously
and keeps only the newest frame with the monotonic time it arrived; `frame(after=trigger_at)` returns
the first frame read at or after the trigger. Every OpenCV call — open, read, set, release — runs in
that thread (captures are not safe to share between threads). Only the reference to the latest frame
crosses over; the loop is woken with `call_soon_threadsafe`.

A source that fails — cannot be opened, a read fails (stream ended, device unplugged), a file that
was deleted — raises `DeviceError` from `open()` or `frame()`; a source is not reopened here: the
camera driver's supervisor makes a new one with backoff. This module is a pipe only: no decoding.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from devices.health import DeviceError

log = logging.getLogger(__name__)

FILE_CHECK_S = 0.5  # how often a file source checks that its file is still there
DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, height × width × 3; never written to after it is handed out
    at: float  # time.monotonic() when the read returned
    seq: int  # 1, 2, … per opened source


def describe(source: int | str) -> tuple[str, str]:
    """(kind, label) of a source: kind is "device", "file" or "stream"."""
    if isinstance(source, int):
        return "device", f"camera #{source}"
    if "://" in source:
        scheme, _, rest = source.partition("://")
        return "stream", f"{scheme}://{rest.rpartition('@')[2]}"  # never log credentials in a URL
    if source.startswith("/dev/"):
        return "device", source
    return "file", source


class VideoSource:
    def __init__(
        self,
        source: int | str,
        *,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 3.0,
        file_fps: float | None = None,  # None: the file's own rate (25 if it does not say)
    ) -> None:
        self.source = source
        self.kind, self.label = describe(source)
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._file_fps = file_fps
        self._latest: Frame | None = None
        self._error: DeviceError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = asyncio.Event()
        self.width = self.height = 0
        self.fps = 0.0

    # --- lifecycle -----------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the source in its thread and start grabbing; DeviceError if it cannot be opened."""
        loop = asyncio.get_running_loop()
        opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, opened), name=f"video:{self.label}", daemon=True
        )
        self._thread.start()
        try:
            async with asyncio.timeout(self._open_timeout_s + 5):
                await asyncio.wrap_future(opened)
        except TimeoutError:
            self._stop.set()
            raise DeviceError(
                f"{self.label}: open did not return within {self._open_timeout_s + 5:g} s"
            ) from None

    async def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self._read_timeout_s + 1)

    async def __aenter__(self) -> VideoSource:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- frames --------------------------------------------------------------------------------------
    @property
    def latest(self) -> Frame | None:
        return self._latest

    @property
    def error(self) -> DeviceError | None:
        return self._error

    async def frame(self, *, after: float | None = None, newer_than: int = 0, timeout: float = 2.0) -> Frame:
        """The latest frame read at or after monotonic time `after` and with seq > `newer_than`,
        waiting for one up to `timeout`; DeviceError if the source failed or nothing came."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self._error is not None:
                        raise self._error
                    frame = self._latest
                    if frame is not None and frame.seq > newer_than and (after is None or frame.at >= after):
                        return frame
                    await self._changed.wait()
        except TimeoutError:
            raise DeviceError(f"{self.label}: no new frame within {timeout:g} s") from None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the grabbing thread: every OpenCV call happens here ----------------------------------------
    def _run(self, loop: asyncio.AbstractEventLoop, opened: concurrent.futures.Future[None]) -> None:
        try:
            cap = self._open()
        except Exception as exc:
            opened.set_exception(exc if isinstance(exc, DeviceError) else DeviceError(f"{self.label}: {exc}"))
            return
        opened.set_result(None)
        try:
            self._grab(cap, loop)
        except Exception as exc:
            if not self._stop.is_set():
                error = exc if isinstance(exc, DeviceError) else DeviceError(f"{self.label}: {exc}")
                log.debug("video source failed", extra={"source": self.label, "reason": str(error)})
                self._error = error
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._notify)
        finally:
            cap.release()

    def _open(self) -> cv2.VideoCapture:
        if self.kind == "file" and not os.path.isfile(self.source):
            raise DeviceError(f"{self.label}: no such file")
        if self.kind == "device":
            cap = cv2.VideoCapture(self.source)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._read_timeout_s * 1000),
            ]  # fmt: skip
            cap = cv2.VideoCapture(str(self.source), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"{self.label}: cannot open")
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return cap

    def _grab(self, cap: cv2.VideoCapture, loop: asyncio.AbstractEventLoop) -> None:
        is_file = self.kind == "file"
        period = 1.0 / (self._file_fps or (self.fps if 0 < self.fps <= 240 else DEFAULT_FPS))
        next_at = checked_at = time.monotonic()
        seq = 0
        while not self._stop.is_set():
            ok, image = cap.read()
            if not ok and is_file:  # the end: play it again (from the file if it is still there)
                self._check_file()
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, image = cap.read()
            if not ok or image is None:
                raise DeviceError(f"{self.label}: read failed ({'empty file' if is_file else 'stream lost'})")
            seq += 1
            self._latest = Frame(image, time.monotonic(), seq)
            loop.call_soon_threadsafe(self._notify)
            if is_file:  # a file is read as fast as the disk allows: pace it like a camera
                now = time.monotonic()
                if now - checked_at >= FILE_CHECK_S:
                    self._check_file()
                    checked_at = now
                next_at += period
                if next_at < now:
                    next_at = now
                self._stop.wait(next_at - now)

    def _check_file(self) -> None:
        """An open file keeps playing after it is deleted (the fd stays valid); treat deletion as loss."""
        if not Path(str(self.source)).is_file():
            raise DeviceError(f"{self.label}: file gone")
