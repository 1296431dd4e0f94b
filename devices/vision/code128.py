"""A strict Code 128 reader for upright scan profiles, used only to confirm what zxing-cpp read.

Why a second reader: Code 128's mod-103 check catches every single wrong symbol but not every pair.
A bar printed a module too wide (a smudge, a hot print head) makes one symbol invalid; a tolerant
reader — zxing-cpp matches each symbol to the *nearest* pattern, by edge-to-edge distances — may
take it for a valid one, and if another symbol is misjudged too (modules that are not a whole
number of pixels, blur), one time in about a hundred the two errors satisfy the check. On synthetic
frames of labels with one damaged bar, about 1 label in 30 read as the same wrong waybill from
every angle — zxing-cpp's own pass as much as upright views, so reading twice does not catch it.

This reader measures each bar and space to a fraction of a pixel (threshold crossings of the
profile, interpolated), scales each symbol to its 11 modules and requires every element to lie
within `TOLERANCE` of a whole number of modules and to spell a pattern of the standard's table; then
the check symbol, then the text. A misprinted symbol is not a pattern of the table, so the profile
gives no text and the read is not confirmed. It reads code sets A, B and C, SHIFT, FNC1 (first
position: GS1, AIM ]C1; elsewhere GS, 0x1D) and single FNC4 (Latin-1); anything else gives None.
"""

from __future__ import annotations

import numpy as np

# The standard's bar/space widths (ISO/IEC 15417) of the symbol values 0..105; the stop is 2331112.
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
STOP = (2, 3, 3, 1, 1, 1, 2)
VALUE = {tuple(int(c) for c in p): v for v, p in enumerate(PATTERNS)}
START_A, START_B, START_C = 103, 104, 105
SHIFT, CODE_C, CODE_B, CODE_A, FNC1, FNC4_A, FNC4_B = 98, 99, 100, 101, 102, 101, 100
TOLERANCE = 0.3  # of a module, per element
QUIET_MODULES = 5  # light before the start and after the stop, at least (the standard asks for 10)
GS = "\x1d"
PARTS = 3


def runs(profile: np.ndarray) -> tuple[list[float], bool]:
    """Widths (px, interpolated) of the light and dark runs of a 1D intensity profile, and whether
    the first run is dark. The threshold is halfway between the profile's dark and light levels."""
    p = np.asarray(profile, dtype=np.float64)
    lo, hi = np.percentile(p, (5, 95))
    if hi - lo < 20:
        return [], False
    d = p - (lo + hi) / 2
    sign = d < 0  # dark
    idx = np.nonzero(sign[1:] != sign[:-1])[0]
    if len(idx) == 0:
        return [], bool(sign[0])
    edges = idx + d[idx] / (d[idx] - d[idx + 1])  # where the profile crosses the threshold
    bounds = np.concatenate(([0.0], edges, [float(len(p) - 1)]))
    return np.diff(bounds).tolist(), bool(sign[0])


def _symbol(widths: list[float]) -> int | None:
    """The value of one symbol (6 elements; 7: the stop, 106) if every element is near whole modules."""
    modules = 13 if len(widths) == 7 else 11
    unit = sum(widths) / modules
    rounded = tuple(int(w / unit + 0.5) for w in widths)
    if sum(rounded) != modules:
        return None
    for w, r in zip(widths, rounded, strict=True):
        if r < 1 or abs(w / unit - r) > TOLERANCE:
            return None
    if len(widths) == 7:
        return 106 if rounded == STOP else None
    return VALUE.get(rounded)


def symbols(widths: list[float], first_dark: bool) -> list[int] | None:
    """Symbol values, start to check, of the first Code 128 symbol found in the runs, or None."""
    start = 0 if first_dark else 1
    for begin in range(start, len(widths) - 6, 2):
        quiet = widths[begin - 1] if begin > 0 else 0.0
        if quiet < QUIET_MODULES * sum(widths[begin : begin + 6]) / 11:
            continue
        value = _symbol(widths[begin : begin + 6])
        if value not in (START_A, START_B, START_C):
            continue
        values = [value]
        at = begin + 6
        while at + 6 <= len(widths):
            stop = widths[at : at + 7]
            if len(stop) == 7 and _symbol(stop) == 106:
                after = widths[at + 7] if at + 7 < len(widths) else 0.0
                if after >= QUIET_MODULES * sum(stop) / 13 and len(values) >= 3:
                    return values
                break
            v = _symbol(widths[at : at + 6])
            if v is None or v >= START_A:
                break
            values.append(v)
            at += 6
    return None


def check_ok(values: list[int]) -> bool:
    *data, check = values
    return (data[0] + sum(i * v for i, v in enumerate(data[1:], start=1))) % 103 == check


def text(values: list[int]) -> tuple[str, str] | None:
    """(AIM identifier, plain text) of start..data symbols (no check), or None if not supported."""
    sets = {START_A: "A", START_B: "B", START_C: "C"}
    code = sets[values[0]]
    aim = "]C0"
    out: list[str] = []
    shift = False
    high = False  # the next character gets +128 (single FNC4)
    data = values[1:]
    for i, v in enumerate(data):
        current = ("B" if code == "A" else "A") if shift else code
        shift = False
        if v == FNC1:
            if i == 0:
                aim = "]C1"
            else:
                out.append(GS)
            continue
        if current == "C":
            if v < 100:
                out.append(f"{v:02d}")
            elif v == CODE_B:
                code = "B"
            elif v == CODE_A:
                code = "A"
            else:
                return None
            continue
        if v < 96:
            ch = v + 32 if current == "B" or v < 64 else v - 64
            out.append(chr(ch + (128 if high else 0)))
            high = False
        elif v == SHIFT:
            shift = True
        elif v == CODE_C:
            code = "C"
        elif (current == "A" and v == CODE_B) or (current == "B" and v == CODE_A):
            code = "B" if v == CODE_B else "A"
        elif (current == "A" and v == FNC4_A) or (current == "B" and v == FNC4_B):
            if high:
                return None  # FNC4 FNC4: a latch into Latin-1, not read here
            high = True
        else:
            return None  # FNC2, FNC3
    if shift or high:
        return None
    return aim, "".join(out)


def read(profile: np.ndarray) -> tuple[str, str] | None:
    """(AIM identifier, text) of the Code 128 symbol in a profile across its bars (either way
    round), with every element within tolerance and the check symbol right; else None."""
    for p in (profile, profile[::-1]):
        widths, first_dark = runs(p)
        values = symbols(widths, first_dark)
        if values is not None and check_ok(values):
            return text(values[:-1])
    return None


def confirms(upright: np.ndarray, aim: str, plain: str, parts: int = PARTS) -> bool:
    """Whether an upright view of bars (reading direction along x) spells exactly (`aim`, `plain`):
    its rows are split into `parts` groups, each averaged into one profile (fewer rows than the
    whole view, so bars that fan out a little under perspective do not smear); at least one group
    must read it and none may read anything else."""
    height = upright.shape[0]
    found = set()
    for i in range(parts):
        rows = upright[i * height // parts : (i + 1) * height // parts]
        if len(rows):
            got = read(rows.astype(np.float64).mean(axis=0))
            if got is not None:
                found.add(got)
    return found == {(aim, plain)}
