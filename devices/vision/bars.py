"""Code 128 at any angle: find the bars, turn them upright, read them in two bands, spell them again.

Why, for the camera driver's waybills:

- **Skew.** zxing-cpp reads a linear code along pixel rows (and, with `try_rotate`, columns). A row
  reads a label only if it crosses its bars from the first to the last, so a label skewed by θ
  reads only while its bars are taller than `length × tan θ`: for waybills with bars 15–30 % of the
  symbol's length, ±10–15° around 0° and 90°. Labels at 20–70° never decode.
- **Wrong codes.** Code 128's mod-103 check catches every single wrong symbol, not every pair. Rows
  that cross the ends of slightly skewed bars see some bars and miss others; a damaged bar is taken
  for the nearest valid symbol by zxing-cpp's tolerant matching; and now and then a second symbol
  goes wrong with it so that the check passes: zxing-cpp alone returns a wrong waybill, rarely for
  a skewed label and more often for a damaged one.

How:

1. **Where the bars are**, as a rotated `Box` (centre, reading direction, length, bar height):
   around a read zxing-cpp's pass made (`around`: its scan line's ends give the direction and
   length; the bars' height is where the edge density along that direction stays high); else from
   OpenCV's `cv2.barcode.BarcodeDetector.detectMulti` (it misses a few large, clear labels); else
   `located` along the frame's strongest edge orientations (a label's bars dominate the
   gradient-weighted histogram of edge directions): where the gradient along that direction
   outweighs the one across it.
2. **Upright**: the box is sampled with `warpAffine` along its reading direction, with room for the
   quiet zones, after its angle is refined from the structure tensor of the bars (boxes are a few
   degrees off).
3. **Two bands**: the upper and the lower half of the middle of the bars are read separately by
   zxing-cpp (`try_rotate` off, sharpened by an unsharp mask, at the frame's scale, then at twice
   it: modules of 2–2.5 pixels survive being turned much better upsampled and sharpened). Both
   bands must read the same text and no view of the box anything else (two texts from one set of
   bars: neither is trusted). Middle rows cannot run off the bars' ends.
4. **Spelled again**: the strict reader (`devices.vision.code128`) must find exactly that text in
   both bands, measuring every bar and space within 0.3 module of the standard's patterns, so a
   damaged symbol is not taken for a valid one.

`confirm` and `search` never start a step once `deadline` (time.perf_counter()) has passed, so they
overrun it by one step at most: a step is one detection, the orientation histogram with its regions,
or one box (BENCHMARKS.md, camera_skew, has what they cost).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import zxingcpp

from devices.vision import code128

QUIET = 0.12  # room along the bars on each side, as a share of the box's length (quiet zones)
BANDS = ((0.12, 0.5), (0.5, 0.88))  # the rows read, as shares of the bars' height
SCALES = (1.0, 2.0)
MAX_BOXES = 6
MIN_HEIGHT_PX = 10  # bars shorter than this leave no two bands of rows
STRICT_SCALE = 2.0  # the strict reader measures bars in views at twice the frame's scale
SHARPEN = 0.8  # unsharp mask over each view (σ 1 frame pixel): blur from optics and resampling
BARNESS_KEEP, BARNESS_MIN = 0.35, 40.0  # bars: gradient along minus across, share of the peak, floor
MIN_AREA_HALF_PX = 150  # a region of bars smaller than this at half scale is not a label
EDGE_KEEP = 0.4  # the bars end where the edge density falls below this share of the read rows'

CODE128 = zxingcpp.BarcodeFormat.Code128
CODE128_ONLY = zxingcpp.BarcodeFormats(CODE128)

_local = threading.local()


@dataclass(frozen=True)
class Box:
    """A rotated rectangle around bars: centre, unit vector along the reading direction, sizes (px)."""

    cx: float
    cy: float
    ux: float
    uy: float
    length: float
    height: float

    @property
    def angle(self) -> float:
        """The reading direction in degrees counter-clockwise from the image's x axis, [0, 180)."""
        return math.degrees(math.atan2(-self.uy, self.ux)) % 180

    def turned(self, degrees: float) -> Box:
        """The same box with its reading direction turned `degrees` (clockwise on screen)."""
        rad = math.radians(degrees)
        c, s = math.cos(rad), math.sin(rad)
        ux, uy = self.ux * c - self.uy * s, self.ux * s + self.uy * c
        return Box(self.cx, self.cy, ux, uy, self.length, self.height)


@dataclass(frozen=True)
class Read:
    text: str
    symbology_identifier: str
    format: str  # zxing-cpp's name, e.g. "Code 128"
    angle: float  # the bars' reading direction, degrees [0, 180), as in Box.angle


# --- where the bars are ------------------------------------------------------------------------------
def _detector() -> cv2.barcode.BarcodeDetector:
    """One detector per thread: captures are decoded in worker threads."""
    detector = getattr(_local, "detector", None)
    if detector is None:
        detector = _local.detector = cv2.barcode.BarcodeDetector()
    return detector


def detected(gray: np.ndarray) -> list[Box]:
    """Regions of parallel bars found by OpenCV's barcode detector, largest first."""
    try:
        ok, quads = _detector().detectMulti(gray)
    except cv2.error:  # an image too small for its scales
        return []
    if not ok or quads is None:
        return []
    found = []
    for quad in np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2):
        along = (quad[1] - quad[0] + quad[2] - quad[3]) / 2
        across = (quad[3] - quad[0] + quad[2] - quad[1]) / 2
        if np.linalg.norm(across) > np.linalg.norm(along):
            along, across = across, along
        length, height = float(np.linalg.norm(along)), float(np.linalg.norm(across))
        if length >= 1 and height >= 1:
            cx, cy = quad.mean(axis=0)
            found.append(Box(float(cx), float(cy), along[0] / length, along[1] / length, length, height))
    return sorted(found, key=lambda box: box.length * box.height, reverse=True)


def around(gray: np.ndarray, quad: Sequence[tuple[float, float]]) -> Box | None:
    """The bars around a zxing-cpp linear read at `quad` (top left, top right, bottom right, bottom
    left: the first and the last scan line that read it, each from the start to the stop pattern)."""
    tl, tr, br, bl = (np.asarray(p, dtype=np.float64) for p in quad)
    along = (tr - tl + br - bl) / 2
    length = float(np.linalg.norm(along))
    if length < 8:
        return None
    ux, uy = along / length
    centre = (tl + tr + br + bl) / 4
    lines = abs(float(np.dot((bl - tl + br - tr) / 2, (-uy, ux))))  # the read rows' extent across
    box = Box(float(centre[0]), float(centre[1]), float(ux), float(uy), length, max(lines, 6.0))
    box = box.turned(lean(view(gray, box)))
    # The bars' extent across: rows of a tall upright view whose edge density (|d/dx|, i.e. along
    # the reading direction) stays near that of the rows zxing read.
    tall = Box(box.cx, box.cy, box.ux, box.uy, box.length, box.length)
    upright = view(gray, tall).astype(np.float32)
    edges = np.abs(cv2.Scharr(upright, cv2.CV_32F, 1, 0))
    w = edges.shape[1]
    profile = edges[:, w // 8 : w - w // 8].mean(axis=1)
    mid = edges.shape[0] // 2
    half = max(1, round(lines / 2))
    reference = float(np.median(profile[max(0, mid - half) : mid + half + 1]))
    if reference <= 0:
        return None
    keep = profile >= EDGE_KEEP * reference
    top = mid
    while top > 0 and keep[top - 1]:
        top -= 1
    bottom = mid
    while bottom < len(keep) - 1 and keep[bottom + 1]:
        bottom += 1
    shift = (top + bottom + 1) / 2 - edges.shape[0] / 2  # view rows run along (-uy, ux)
    return Box(
        box.cx - box.uy * shift, box.cy + box.ux * shift, box.ux, box.uy, box.length, float(bottom + 1 - top)
    )


# --- upright views -----------------------------------------------------------------------------------
def view(
    gray: np.ndarray, box: Box, *, scale: float = 1.0, rows: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """The box sampled upright — reading direction along x —, with quiet zones, at `scale`; only the
    rows between the shares `rows` of its height."""
    width = box.length * (1 + 2 * QUIET)
    top, bottom = (rows[0] - 0.5) * box.height, (rows[1] - 0.5) * box.height
    out_w, out_h = max(1, round(width * scale)), max(1, round((bottom - top) * scale))
    ux, uy = box.ux, box.uy
    vx, vy = -uy, ux  # across the bars: "down" in the view
    x0 = box.cx - ux * width / 2 + vx * top
    y0 = box.cy - uy * width / 2 + vy * top
    # view (i, j) samples image (x0, y0) + (i·u + j·v) / scale
    matrix = np.array([[ux / scale, vx / scale, x0], [uy / scale, vy / scale, y0]], dtype=np.float64)
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(
        gray,
        matrix,
        (out_w, out_h),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def lean(upright: np.ndarray) -> float:
    """Degrees by which the bars of an upright view still lean (the direction of the dominant
    gradient, from the structure tensor); `box.turned(lean)` stands them up."""
    image = upright.astype(np.float32)
    gx = cv2.Scharr(image, cv2.CV_32F, 1, 0)
    gy = cv2.Scharr(image, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    if jxx + jyy <= 0:
        return 0.0
    return math.degrees(0.5 * math.atan2(2 * jxy, jxx - jyy))


# --- reading -----------------------------------------------------------------------------------------
def includes_code128(formats: zxingcpp.BarcodeFormat | zxingcpp.BarcodeFormats) -> bool:
    """Whether zxing-cpp reads Code 128 with `formats` (an empty set means every format)."""
    if isinstance(formats, zxingcpp.BarcodeFormat):
        formats = zxingcpp.BarcodeFormats(formats)
    listed = list(formats)
    return not listed or any(
        CODE128 in list(zxingcpp.barcode_formats_list(zxingcpp.BarcodeFormats(f))) for f in listed
    )


def _zxing(image: np.ndarray, formats: zxingcpp.BarcodeFormats, rotate: bool) -> list[zxingcpp.Barcode]:
    return zxingcpp.read_barcodes(
        np.ascontiguousarray(image), formats=formats, try_rotate=rotate, text_mode=zxingcpp.TextMode.Plain
    )


def _sharpened(image: np.ndarray, scale: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), scale)
    return cv2.addWeighted(image, 1 + SHARPEN, blurred, -SHARPEN, 0)


def read(gray: np.ndarray, box: Box) -> Read | None:
    """The one Code 128 code both bands of the box read and the strict reader spells in both, or
    None: nothing, one band only, two different texts in any view (ambiguous bars: neither is
    trusted), or a text the bars do not strictly spell."""
    if box.height < MIN_HEIGHT_PX or box.length < MIN_HEIGHT_PX:
        return None
    box = box.turned(lean(view(gray, box, rows=(0.2, 0.8))))
    seen: set[str] = set()
    for scale in SCALES:
        views = [view(gray, box, scale=scale, rows=band) for band in BANDS]
        upper, lower = ({r.text: r for r in _zxing(_sharpened(v, scale), CODE128_ONLY, False)} for v in views)
        seen |= upper.keys() | lower.keys()
        if len(seen) > 1:
            return None
        if len(upper) == 1 and upper.keys() == lower.keys():
            (r,) = upper.values()
            fine = (
                views
                if scale >= STRICT_SCALE
                else [view(gray, box, scale=STRICT_SCALE, rows=b) for b in BANDS]
            )
            if not all(code128.confirms(v, r.symbology_identifier, r.text) for v in fine):
                return None
            return Read(r.text, r.symbology_identifier, str(r.format), box.angle)
    return None


def _quad(barcode: zxingcpp.Barcode) -> list[tuple[float, float]]:
    p = barcode.position
    return [(float(q.x), float(q.y)) for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]


def confirm(gray: np.ndarray, reads: Iterable[zxingcpp.Barcode], deadline: float) -> list[Read]:
    """For each linear read zxing-cpp made of `gray`, what two bands of the bars around it read
    (its own text when it was right; nothing when the bars do not read the same twice)."""
    out: dict[str, Read] = {}
    for barcode in reads:
        if time.perf_counter() >= deadline:
            break
        box = around(gray, _quad(barcode))
        found = read(gray, box) if box is not None else None
        if found is not None:
            out.setdefault(found.text, found)
    return list(out.values())


def _half_gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    small = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA).astype(np.float32)
    return cv2.Scharr(small, cv2.CV_32F, 1, 0), cv2.Scharr(small, cv2.CV_32F, 0, 1)


def orientations(gx: np.ndarray, gy: np.ndarray, count: int = 2) -> list[float]:
    """The strongest edge orientations of an image's gradients, degrees counter-clockwise [0, 180),
    strongest first, leaving out those within 5° of 0° and 90° (zxing-cpp's own pass reads those):
    a label's bars make the strongest peak of the gradient-weighted histogram of edge directions,
    along its reading direction, and usually a second one along its bars."""
    magnitude = cv2.magnitude(gx, gy).ravel()
    direction = (-cv2.phase(gx, gy, angleInDegrees=True).ravel()) % 180  # image y runs down
    hist = np.bincount(direction.astype(np.int32) % 180, weights=magnitude, minlength=180)
    hist = np.convolve(np.r_[hist[-3:], hist, hist[:3]], np.ones(7) / 7, mode="same")[3:-3]
    peaks: list[float] = []
    for i in np.argsort(hist)[::-1]:
        if len(peaks) == count or hist[i] <= 0:
            break
        if min(i % 90, 90 - i % 90) <= 5 or any(min(abs(i - p), 180 - abs(i - p)) <= 8 for p in peaks):
            continue
        peaks.append(float(i))
    return peaks


def located(gx: np.ndarray, gy: np.ndarray, degrees: float) -> list[Box]:
    """Regions of bars read along `degrees` (counter-clockwise), from half-scale gradients: where
    the gradient along that direction outweighs the one across it (bars; not print, which has edges
    every way, nor a single edge), largest first, in full-scale pixels."""
    rad = math.radians(degrees)
    ux, uy = math.cos(rad), -math.sin(rad)
    along = np.abs(gx * ux + gy * uy)
    across = np.abs(gy * ux - gx * uy)
    barness = cv2.blur(along - across, (9, 9))
    peak = float(barness.max())
    if peak <= 0:
        return []
    mask = (barness > max(BARNESS_KEEP * peak, BARNESS_MIN)).astype(np.uint8)
    closed = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    found = []
    for i in range(1, count):
        if stats[i, cv2.CC_STAT_AREA] < MIN_AREA_HALF_PX:
            continue
        x0, y0, w, h = (int(v) for v in stats[i, :4])
        rows, cols = np.nonzero(labels[y0 : y0 + h, x0 : x0 + w] == i)
        xs = cols + x0 + 0.5  # pixel centres, in the half-scale frame
        ys = rows + y0 + 0.5
        pu, pv = xs * ux + ys * uy, ys * ux - xs * uy
        lo, hi = np.percentile(pu, (1, 99))
        vlo, vhi = np.percentile(pv, (1, 99))
        cu, cv = (lo + hi) / 2, (vlo + vhi) / 2
        cx, cy = cu * ux - cv * uy, cu * uy + cv * ux
        found.append(Box(2 * cx, 2 * cy, ux, uy, 2 * float(hi - lo), 2 * float(vhi - vlo)))
    return sorted(found, key=lambda box: box.length * box.height, reverse=True)


def search(gray: np.ndarray, deadline: float) -> list[Read]:
    """Codes read in two bands anywhere in `gray`, at any angle: the detector's boxes first; if none
    of them reads, the regions of bars along each of the frame's strongest edge orientations."""
    out: dict[str, Read] = {}
    if time.perf_counter() >= deadline:
        return []
    for box in detected(gray)[:MAX_BOXES]:
        if time.perf_counter() >= deadline:
            return list(out.values())
        found = read(gray, box)
        if found is not None:
            out.setdefault(found.text, found)
    if out or time.perf_counter() >= deadline:
        return list(out.values())
    gx, gy = _half_gradients(gray)
    for degrees in orientations(gx, gy):
        for box in located(gx, gy, degrees)[:MAX_BOXES]:
            if time.perf_counter() >= deadline:
                return list(out.values())
            found = read(gray, box)
            if found is not None:
                out.setdefault(found.text, found)
        if out:
            break
    return list(out.values())
