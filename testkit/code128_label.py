"""Code 128 waybill labels on a camera frame, written from the standard (ISO/IEC 15417), not from the
decoder's own writer, so a read proves the camera decodes a label it did not draw itself.

- `symbols(text)`: the symbol values — start B, or start C for an even run of digits; CODE C / CODE B
  switches for runs of four digits or more; the mod-103 check symbol; stop.
- `widths(values)`: bar, space, bar, … module widths from the standard's table (6 elements each,
  11 modules; the stop 7 elements, 13 modules).
- `barcode(text)`: the symbol as a grayscale image with quiet zones; `corrupt` changes one bar.
- `label(text)`: a white waybill label (title, bars, the number in plain text).
- `scene(label, angle)`: the label turned by `angle` degrees on a parcel on a belt, with sensor
  noise, mild blur, a little perspective and JPEG, as an MJPEG camera delivers it (1280×720 BGR).

Deterministic for a given `seed`; nothing is written to disk.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# The standard's bar/space widths for symbol values 0..105 (6 elements, 11 modules) and the stop.
_TABLE = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 112232 122132 "
    "122231 113222 123122 123221 223211 221132 221231 213212 223112 312131 311222 321122 321221 312212 "
    "322112 322211 212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 231113 231311 "
    "112133 112331 132131 113123 113321 133121 313121 211331 231131 213113 213311 213131 311123 311321 "
    "331121 312113 312311 332111 314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 "
    "112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 111242 121142 121241 114212 "
    "124112 124211 411212 421112 421211 212141 214121 412121 111143 111341 131141 114113 114311 411113 "
    "411311 113141 114131 311141 411131 211412 211214 211232"
)
PATTERNS = tuple(_TABLE.split())
STOP_PATTERN = "2331112"
CODE_C, CODE_B, START_B, START_C, STOP = 99, 100, 104, 105, 106
QUIET_MODULES = 10
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _digit_run(text: str, at: int) -> int:
    end = at
    while end < len(text) and text[end].isdigit():
        end += 1
    return end - at


def symbols(text: str) -> list[int]:
    """Symbol values of `text` (printable ASCII), from the start symbol to the stop symbol."""
    if not text or any(not 32 <= ord(ch) < 127 for ch in text):
        raise ValueError("printable ASCII only")
    run = _digit_run(text, 0)
    code_c = run >= 4 or (run == len(text) and run % 2 == 0)
    values = [START_C if code_c else START_B]
    i = 0
    while i < len(text):
        run = _digit_run(text, i)
        if code_c and run < 2:
            values.append(CODE_B)
            code_c = False
        elif not code_c and run >= 4:
            if run % 2:  # an odd run: its first digit in B, the rest in pairs
                values.append(ord(text[i]) - 32)
                i += 1
            values.append(CODE_C)
            code_c = True
        if code_c:
            values.append(int(text[i : i + 2]))
            i += 2
        else:
            values.append(ord(text[i]) - 32)
            i += 1
    check = (values[0] + sum(pos * v for pos, v in enumerate(values[1:], start=1))) % 103
    return [*values, check, STOP]


def widths(values: list[int]) -> list[int]:
    """Module widths, bar first, of the symbols `values` (the last one the stop)."""
    out: list[int] = []
    for v in values:
        out.extend(int(ch) for ch in (STOP_PATTERN if v == STOP else PATTERNS[v]))
    return out


def corrupt(values: list[int], rng: np.random.Generator) -> list[int]:
    """The widths of `values` with one bar of one data symbol made a module wider or narrower (the
    next space takes up the difference, so the rest stays in place: a smudge or a scratch)."""
    w = widths(values)
    symbol = int(rng.integers(1, len(values) - 2))  # a data or check symbol, not start or stop
    while True:
        bar = symbol * 6 + 2 * int(rng.integers(0, 3))
        delta = int(rng.choice([-1, 1]))
        if 1 <= w[bar] + delta <= 4 and 1 <= w[bar + 1] - delta <= 4:
            w[bar] += delta
            w[bar + 1] -= delta
            return w


def barcode(
    text: str | None = None, *, module_px: float = 3.0, height_px: int = 90, modules: list[int] | None = None
) -> np.ndarray:
    """The bars of `text` (or of explicit module `modules`) with quiet zones, grayscale uint8. Edges
    fall where they fall: a pixel an edge crosses is grey in proportion (a camera integrates light
    over each pixel), so modules need not be a whole number of pixels."""
    if modules is None:
        assert text is not None
        modules = widths(symbols(text))
    total = sum(modules) + 2 * QUIET_MODULES
    fine = 16  # sub-pixel steps per pixel
    row = np.full(round(total * module_px * fine), 255.0)
    x = QUIET_MODULES
    for i, w in enumerate(modules):
        if i % 2 == 0:
            row[round(x * module_px * fine) : round((x + w) * module_px * fine)] = 0.0
        x += w
    row = row[: len(row) // fine * fine].reshape(-1, fine).mean(axis=1)
    return np.repeat(np.round(row).astype(np.uint8)[None, :], height_px, axis=0)


def label(
    text: str,
    *,
    module_px: float = 3.0,
    height_px: int = 90,
    modules: list[int] | None = None,
    title: str = "BONDGATE EXPRESS",
) -> np.ndarray:
    """A white waybill label: a title, the barcode, the number in plain text (BGR)."""
    bars = barcode(text, module_px=module_px, height_px=height_px, modules=modules)
    bh, bw = bars.shape
    width, height = bw + 30, bh + 120
    out = np.full((height, width, 3), 245, np.uint8)
    cv2.putText(out, title, (15, 38), FONT, 0.9, (20, 20, 20), 2, cv2.LINE_AA)
    out[55 : 55 + bh, 15 : 15 + bw] = cv2.cvtColor(bars, cv2.COLOR_GRAY2BGR)
    cv2.putText(out, text, (20, 55 + bh + 42), FONT, 0.8, (20, 20, 20), 2, cv2.LINE_AA)
    return out


def background(rng: np.random.Generator, width: int = 1280, height: int = 720) -> np.ndarray:
    """A belt with a cardboard parcel, tape and printed clutter (BGR), without sensor noise."""
    frame = np.full((height, width, 3), 70, np.uint8)
    for y in range(0, height, 48):
        cv2.line(frame, (0, y), (width, y), (55, 55, 55), 3)
    cv2.rectangle(frame, (60, 40), (width - 60, height - 40), (70, 120, 170), -1)
    for _ in range(12):  # clutter: tape edges, print, stickers
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            end = (x + int(rng.integers(-300, 300)), y + int(rng.integers(-200, 200)))
            cv2.line(frame, (x, y), end, colour, 4)
        else:
            cv2.putText(frame, "FRAGILE 1234", (x, y), FONT, 1.2, colour, 2, cv2.LINE_AA)
    return frame


def scene(
    lbl: np.ndarray | None,
    angle: float,
    *,
    seed: int = 0,
    blur: float = 0.8,
    perspective: float = 0.03,
    noise: float = 6.0,
    jpeg: int = 90,
    width: int = 1280,
    height: int = 720,
) -> np.ndarray:
    """`lbl` (None: no label) turned `angle` degrees counter-clockwise, each corner moved by up to
    `perspective` of its size, near the middle of a `width`×`height` frame of `background`; then
    sensor noise (σ `noise` grey levels), blur and JPEG, as an MJPEG camera delivers it."""
    rng = np.random.default_rng(seed)
    frame = background(rng, width, height)
    if lbl is not None:
        lh, lw = lbl.shape[:2]
        rad = math.radians(angle)
        cos, sin = math.cos(rad), math.sin(rad)
        cx = width / 2 + rng.uniform(-60, 60)
        cy = height / 2 + rng.uniform(-40, 40)
        corners = np.float32([[0, 0], [lw, 0], [lw, lh], [0, lh]])
        placed = []
        for x, y in corners:
            dx = x - lw / 2 + rng.uniform(-perspective, perspective) * lw
            dy = y - lh / 2 + rng.uniform(-perspective, perspective) * lh
            placed.append((cx + dx * cos + dy * sin, cy - dx * sin + dy * cos))
        matrix = cv2.getPerspectiveTransform(corners, np.float32(placed))
        warped = cv2.warpPerspective(lbl, matrix, (width, height), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.full((lh, lw), 255, np.uint8), matrix, (width, height))
        cv2.copyTo(warped, cv2.threshold(mask, 127, 255, cv2.THRESH_BINARY)[1], frame)
    if noise > 0:
        cv2.setRNGSeed(seed)  # OpenCV's generator: ten times faster than numpy's for a whole frame
        grain = np.empty(frame.shape, np.int16)
        cv2.randn(grain, 0, noise)
        frame = cv2.add(frame, grain, dtype=cv2.CV_8U)
    if blur > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        assert ok
        frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return frame
