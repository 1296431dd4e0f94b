"""A camera that reads barcodes on trigger and keeps a JPEG of what it saw as evidence.

`capture(trigger_at)` takes the first frame grabbed at or after the trigger (a photo-eye's
monotonic time), decodes barcodes in it with zxing-cpp (Code 128 at any skew, see below), saves the
frame as `evidence_dir/<sha256 of the JPEG>.jpg`, emits a `CameraFrame` into `driver.events` and
returns it.

Decoding choices (bench/dev_camera.py and bench/camera_skew.py measure them, BENCHMARKS.md has the
figures):
- only the configured formats (default Code 128: parcel waybills), several times faster than all;
- an optional region of interest where the label passes (a crop is cheap and keeps a neighbouring
  parcel's label out of the read);
- `TextMode.Plain`, so a GS1-128 code reads as the raw element string a serial scanner sends after
  `]C1`, not the parenthesised human-readable form: the two readings must compare equal;
- `skew_search_ms` (default 40; 0 turns it off): zxing-cpp reads along pixel rows and columns, so a
  Code 128 label skewed more than about 10–15° from 0° or 90° never decodes, and a damaged or
  skewed label can come out as another waybill whose mod-103 check passes. With it on, Code 128 is
  read by `devices.vision.bars`: bars located at any angle, turned upright, read in two bands that
  must agree and spelled again by a strict reader (`devices.vision.code128`) — zxing-cpp's texts
  are kept only if that confirms them, and otherwise the frame is searched, within that many
  milliseconds of the decode's start;
- decoding and JPEG encoding run in a worker thread, never on the event loop.

Evidence is named by its content hash, so the same image is stored once however often it is
captured, and a reference to it cannot silently point at different bytes later. The file is written
to a temporary name, fsynced and renamed, so a power cut leaves either the whole JPEG or nothing.

Health, via one supervisor: UP while frames flow; a source that cannot be opened, fails a read,
stalls for `frame_timeout_s`, or (a file) disappears → DOWN with the cause, reopened with backoff
(≤ 1 s) and UP again as soon as frames flow.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.events import BarcodeRead, CameraFrame, EventStream
from devices.health import DeviceError, State, SupervisedDriver, Supervisor
from devices.transports.video import Frame, VideoSource
from devices.vision import bars

log = logging.getLogger(__name__)


class Roi(BaseModel):
    """A region of interest in pixels; clipped to the frame, refused if it misses it entirely."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class CameraConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: int | str  # device index, /dev/videoN, a video file, rtsp:// or http:// (MJPEG)
    formats: tuple[str, ...] = ("Code128",)  # zxing-cpp format names, e.g. "Code128", "QRCode", "EAN13"
    roi: Roi | None = None
    evidence_dir: Path | None = None  # None: no evidence saved
    jpeg_quality: int = Field(90, ge=10, le=100)
    try_rotate: bool = True  # labels at 90°/270°; off saves about half the decode time
    # Code 128 at any skew, each read confirmed in two bands of its bars and by a strict reader,
    # within this many ms after zxing-cpp's pass (0: that pass alone, which reads labels only within
    # about ±10–15° of 0°/90° and can return a wrong code for a damaged or skewed label)
    skew_search_ms: float = Field(40.0, ge=0, le=1000)
    frame_timeout_s: float = Field(2.0, gt=0)  # wait for a frame after a trigger; also "stalled" → DOWN
    open_timeout_s: float = Field(5.0, gt=0)
    file_fps: float | None = Field(None, gt=0)  # a file source's playback rate (None: the file's own)

    @field_validator("source")
    @classmethod
    def _index_as_int(cls, source: int | str) -> int | str:
        """ "0" from an environment variable or a YAML string is device 0, not a file named 0."""
        return int(source) if isinstance(source, str) and source.isdigit() else source

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        if not formats:
            raise ValueError("give at least one barcode format")
        for name in formats:
            try:
                zxingcpp.barcode_format_from_str(name)
            except ValueError:
                raise ValueError(f"unknown barcode format {name!r}") from None
        return formats

    @property
    def barcode_formats(self) -> zxingcpp.BarcodeFormats:
        return zxingcpp.barcode_formats_from_str(",".join(self.formats))


class CameraDriver(SupervisedDriver):
    def __init__(self, name: str, config: CameraConfig) -> None:
        self.name = name
        self.config = config
        self.events = EventStream()
        self.supervisor = Supervisor(name, self._session)
        self._formats = config.barcode_formats
        self._source: VideoSource | None = None
        self._task: asyncio.Task[None] | None = None
        self.captures = 0
        if config.evidence_dir is not None:
            config.evidence_dir.mkdir(parents=True, exist_ok=True)

    # --- the session: keep a source open while frames flow ------------------------------------------
    async def _session(self, sup: Supervisor) -> None:
        cfg = self.config
        source = VideoSource(cfg.source, open_timeout_s=cfg.open_timeout_s, file_fps=cfg.file_fps)
        try:
            await source.open()
            frame = await source.frame(timeout=cfg.frame_timeout_s)
            self._source = source
            while True:
                sup.seen()
                frame = await source.frame(newer_than=frame.seq, timeout=cfg.frame_timeout_s)
        finally:
            self._source = None
            await source.close()

    # --- capture -------------------------------------------------------------------------------------
    async def capture(self, trigger_at: float | None = None) -> CameraFrame:
        """Decode the first frame grabbed at or after `trigger_at` (monotonic; default now)."""
        source = self._source
        health = self.supervisor.health
        if source is None or health.state not in (State.UP, State.DEGRADED):
            raise DeviceError(f"{self.name} is {health.state.value}: {health.reason or 'no frames yet'}")
        at = time.monotonic() if trigger_at is None else trigger_at
        frame = await source.frame(after=at, timeout=self.config.frame_timeout_s)
        codes, evidence = await asyncio.to_thread(self._process, frame)
        self.captures += 1
        height, width = frame.image.shape[:2]
        event = CameraFrame(self.name, codes, evidence, width, height, at=frame.at)
        self.events.put(event)
        log.debug(
            "camera capture",
            extra={"device": self.name, "codes": [c.code for c in codes], "evidence": evidence},
        )
        return event

    def _process(self, frame: Frame) -> tuple[tuple[BarcodeRead, ...], str | None]:
        """In a worker thread: decode, then save the evidence."""
        codes = tuple(
            BarcodeRead(
                self.name,
                result.text,
                aim=result.symbology_identifier or None,
                symbology=str(result.format),
                at=frame.at,
            )
            for result in decode(
                frame.image,
                self._formats,
                roi=self.config.roi,
                try_rotate=self.config.try_rotate,
                skew_search_ms=self.config.skew_search_ms,
            )
        )
        evidence = None
        if self.config.evidence_dir is not None:
            try:
                path = save_evidence(frame.image, self.config.evidence_dir, quality=self.config.jpeg_quality)
            except OSError as exc:  # disk full, directory gone: the capture has no proof, so it fails
                raise DeviceError(f"{self.name}: evidence not saved: {exc}") from exc
            evidence = str(path)
        return codes, evidence


def crop(image: np.ndarray, roi: Roi) -> np.ndarray:
    height, width = image.shape[:2]
    if roi.x >= width or roi.y >= height:
        raise DeviceError(
            f"region of interest {roi.x},{roi.y} {roi.w}×{roi.h} is outside the {width}×{height} frame"
        )
    return np.ascontiguousarray(image[roi.y : min(roi.y + roi.h, height), roi.x : min(roi.x + roi.w, width)])


@dataclass(frozen=True)
class Decoded:
    text: str  # plain, as a serial scanner sends it
    symbology_identifier: str  # AIM, e.g. "]C0"
    format: str  # zxing-cpp's name, e.g. "Code 128"
    skew: float | None = None  # read upright: the bars' reading direction, degrees [0, 180)


def decode(
    image: np.ndarray,
    formats: zxingcpp.BarcodeFormats,
    *,
    roi: Roi | None = None,
    try_rotate: bool = True,
    skew_search_ms: float = 0.0,
) -> list[Decoded]:
    """Barcodes in `image` (or its region of interest), in the plain text a serial scanner sends.

    zxing-cpp reads the image first. With `skew_search_ms` > 0 and Code 128 among `formats`, every
    Code 128 code comes from `devices.vision.bars`: read upright in two bands of its bars that must
    agree, and spelled again, bar by bar, by a strict reader. A text zxing-cpp read is kept if the
    bars around it read the same; if none is kept, or not all, the image is searched for bars at
    any angle (labels skewed 20–70°, which zxing's rows cannot read). No step of that starts later
    than `skew_search_ms` after the call began. Other formats are zxing-cpp's reads, as they were.
    """
    start = time.perf_counter()
    if roi is not None:
        image = crop(image, roi)
    first = zxingcpp.read_barcodes(
        image, formats=formats, try_rotate=try_rotate, text_mode=zxingcpp.TextMode.Plain
    )
    code128 = zxingcpp.BarcodeFormat.Code128
    if skew_search_ms <= 0 or not bars.includes_code128(formats):
        return [Decoded(r.text, r.symbology_identifier, str(r.format)) for r in first]
    deadline = start + skew_search_ms / 1000
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    read = [r for r in first if r.format == code128]
    upright = {u.text: u for u in bars.confirm(gray, read, deadline)}
    if not upright or any(r.text not in upright for r in read):  # nothing, or not all: look at every angle
        for u in bars.search(gray, deadline):
            upright.setdefault(u.text, u)
    out = [Decoded(r.text, r.symbology_identifier, str(r.format)) for r in first if r.format != code128]
    return out + [Decoded(u.text, u.symbology_identifier, u.format, u.angle) for u in upright.values()]


def save_evidence(image: np.ndarray, directory: Path, *, quality: int = 90) -> Path:
    """Write `image` as `<sha256 of the JPEG>.jpg` unless it is already there; return the path."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DeviceError("JPEG encoding failed")
    data = buffer.tobytes()
    path = directory / f"{hashlib.sha256(data).hexdigest()}.jpg"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic; two writers of the same hash write the same bytes
    return path
