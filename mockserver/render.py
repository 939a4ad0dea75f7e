"""Real, deterministic, human-readable stand-in images for the mock (generations and edits).

Why it exists: clients of the mock must receive images they can actually decode, that are reproducible
for the same request (so tests can compare bytes), different for different seeds/indexes (so tests can
tell them apart) and that tell a human debugging a client what was asked for (model, size, seed, index
are printed on the picture).

Why it looks the way it does: contract suites request thousands of images, so rendering must be cheap.
The picture is a test card made of flat tiles and grid lines (a seed-dependent palette and pattern) with
a centred label box. Flat tiles mean most pixel rows repeat; the PNG path exploits that with a small
purpose-built encoder (repeated rows become PNG "Up"-filtered zero rows whose deflate output is cached
and spliced in), so a 1024x1024 PNG costs well under a millisecond instead of the ~25 ms of a naive Pillow
gradient + save. The other formats splice too, and decode to the same pixels as a whole-image encode:
a JPEG is assembled from independently coded 16x16 MCUs (a restart marker after each, fixed tables), of
which only the few hundred distinct ones are encoded by libjpeg per request; a lossless WebP is VP8L
written from cached bits (colour-indexed, one set of prefix codes per layout), only the palette and the
seed's digits per request. An edit prepares its source once per input digest (decoded, resized,
posterised, hatched; as palette indices when it has few colours), so a repeated source costs a palette.

Thread-safety: one :class:`Renderer` may be shared by all threads of a pool. Its caches are guarded by
locks, FreeType text rendering is serialised (FreeType faces are not thread-safe), and the expensive
encoding runs outside any lock (Pillow's encoders and zlib release the GIL). Two threads missing the
cache for the same request both render it; the results are byte-identical, so that race is harmless.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import heapq
import io
import math
import re
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Final, Literal, cast, get_args

from PIL import Image, ImageDraw, ImageFont, ImageOps, features

from .lru import BytesLRU, CacheInfo, SizedLRU

__all__ = [
    "MAX_DIMENSION",
    "MEDIA_TYPES",
    "OUTPUT_FORMATS",
    "CacheInfo",
    "ImageInfo",
    "InvalidImage",
    "OutputFormat",
    "RenderRequest",
    "Renderer",
    "image_info",
]

OutputFormat = Literal["png", "jpeg", "webp"]
OUTPUT_FORMATS: Final[tuple[OutputFormat, ...]] = get_args(OutputFormat)
MEDIA_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
)
# WebP cannot exceed 16383 px a side; 8192 keeps a worst-case raster (64 Mpx) affordable for a mock.
MAX_DIMENSION: Final = 8192

_INPUT_FORMATS: Final = ("PNG", "JPEG", "WEBP", "GIF")
_MAX_SOURCE_PIXELS: Final = MAX_DIMENSION * MAX_DIMENSION

# Palette layout shared by every card, so cached label pixels (palette indices) are seed-independent.
_K: Final = 8  # background colours: indices 0.._K-1
_LINE: Final = _K  # grid lines
_BOX: Final = _K + 1  # label box; the text ramp runs from _BOX (no ink) to _TEXT (full ink)
_RAMP: Final = 5  # 8 + 1 + 6 = 15 colours: <= 16 lets libwebp pack 2 pixels per byte (~35% faster)
_TEXT: Final = _BOX + _RAMP
_TEXT_LUT: Final = tuple(_BOX + (v * _RAMP + 127) // 255 for v in range(256))

_MAX_LABEL_CHARS: Final = 256  # no line shows more; bounds the text work for huge prompts
_MIN_FONT_PX: Final = 8
_MAX_FONT_PX: Final = 240
# (lines, width divisor, height divisor): font px = min(W / wdiv, H / hdiv); richest layout first.
_LAYOUTS: Final = (
    (("model", "info", "prompt"), 24.0, 5.6),
    (("model", "info"), 24.0, 3.7),
    (("all",), 34.0, 1.9),
)

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_ZLIB_HEADER: Final = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level hint
_ADLER_BASE: Final = 65521
_SHORT_RUN: Final = 16  # shorter runs of repeated rows are cheaper to deflate than to splice
_DIRECT_RUN_LOG2: Final = 6  # longer cached zero runs are built by doubling, bounding the zlib work
_SMALL_CACHE_ENTRIES: Final = 1024

_JPEG_OPTIONS: Final[Mapping[str, object]] = MappingProxyType({"quality": 85})
_WEBP_OPTIONS: Final[Mapping[str, object]] = MappingProxyType({"quality": 80, "method": 0})
# Flat test cards with <= 16 colours: lossless method 0 is ~2x faster and ~3x smaller than lossy, and exact.
_CARD_WEBP_OPTIONS: Final[Mapping[str, object]] = MappingProxyType({"lossless": True, "quality": 0, "method": 0})
_PNG_OPTIONS: Final[Mapping[str, object]] = MappingProxyType({"compress_level": 1})
_PIL_FORMAT: Final[Mapping[str, str]] = MappingProxyType({"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"})


class InvalidImage(ValueError):
    """An uploaded image (or mask) could not be decoded; the engine maps it to a 400."""


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """Everything that determines an image; equal specs give byte-identical images.

    ``index`` is the position of the image among the n of one request, so siblings differ.
    """

    model: str
    prompt: str
    width: int
    height: int
    seed: int
    index: int = 0
    output_format: OutputFormat = "png"

    def __post_init__(self) -> None:
        """Fail at construction so a bad request never reaches the encoders."""
        for name, value in (("width", self.width), ("height", self.height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
                raise ValueError(f"{name} must be an int in 1..{MAX_DIMENSION}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"index must be a non-negative int, got {self.index!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an encoded image claims to be, read from its header only."""

    format: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the label goes; a pure function of the image size so tests can locate it.

    ``sizes`` are font pixels, except for the info line ("info", or "all" = info + model), whose size is
    the dot-matrix scale. ``tops``/``heights`` are relative to the box; ``info`` indexes the info line.
    """

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    kinds: tuple[str, ...]
    sizes: tuple[int, ...]
    tops: tuple[int, ...]
    heights: tuple[int, ...]
    pad: int
    border: int
    px: int
    info: int


def _digest(*parts: object) -> bytes:
    """Stable across processes (unlike hash()), and length-prefixed so parts cannot run together."""
    h = hashlib.sha256()
    for part in parts:
        raw = str(part).encode("utf-8", "surrogatepass")
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.digest()


# -- palette ----------------------------------------------------------------------------------------
# Hues are quantised to 256 steps so every colour is a table look-up: a palette costs microseconds,
# which matters because every unseeded request needs a new one.
_HUES: Final = 256
_LIGHTS: Final = (0.3, 0.45, 0.6, 0.75)
_SAT_LEVELS: Final = 8
# per scheme, the hue offset (in steps) of each of the _K background colours
_SCHEME_OFFSETS: Final = (
    tuple(round((i - 3.5) * 0.04 * _HUES) for i in range(_K)),  # analogous
    tuple((_HUES // 2) * (i % 2) for i in range(_K)),  # complementary
    tuple(round((i % 3) * _HUES / 3) for i in range(_K)),  # triadic
    tuple(i * _HUES // _K for i in range(_K)),  # spectrum
)
_GOLDEN_STEP: Final = 0.381966 * _HUES  # the i-th image of a request turns the hue by i golden-ratio steps


def _rgb(hue: float, light: float, sat: float) -> bytes:
    return bytes(round(c * 255) for c in colorsys.hls_to_rgb(hue % 1.0, light, sat))


@cache
def _hue_wheel(light: float, sat: float) -> tuple[bytes, ...]:
    """The 256 quantised hues at one lightness/saturation (computed once per pair, a few pairs in all)."""
    return tuple(_rgb(h / _HUES, light, sat) for h in range(_HUES))


@cache
def _label_colours(hue: int) -> bytes:
    """Box colour plus the text ramp (box -> ink) for a hue: label pixels are indices into these."""
    box = _rgb(hue / _HUES + 0.5, 0.1, 0.3)
    ink = b"\xfa\xfa\xfa"
    return b"".join(
        bytes(b + (i - b) * level // _RAMP for b, i in zip(box, ink, strict=True)) for level in range(_RAMP + 1)
    )


def _palette(d: bytes, index: int = 0) -> bytes:
    """A harmonious seed-dependent scheme, so cards look deliberate rather than random noise.

    The i-th image of a request turns the hue by i golden-ratio steps, so siblings never look alike; the
    background colours are rotated by a seed-chosen offset (the tiles' pixel data stays the same).
    """
    hue = (d[0] + round(index * _GOLDEN_STEP)) % _HUES
    offsets = _SCHEME_OFFSETS[d[2] % 4]
    sat = 0.5 + (d[3] % _SAT_LEVELS) / (_SAT_LEVELS - 1) * 0.4
    wheels = [_hue_wheel(light, sat) for light in _LIGHTS]
    shade, turn = d[11] % 4, d[8] % _K
    colours = [wheels[(i + shade) % 4][(hue + offsets[i]) % _HUES] for i in range(_K)]
    grid = _hue_wheel(0.92, 0.2)[hue] if d[12] % 2 else _hue_wheel(0.12, 0.35)[hue]
    return b"".join(colours[turn:] + colours[:turn]) + grid + _label_colours(hue)


# -- background ---------------------------------------------------------------------------------------
_MOTIFS: Final = 6
_VARIANTS: Final = 4  # tile sizes / motif parameters per motif: 24 backgrounds per image size


def _background_key(d: bytes, index: int) -> tuple[int, int]:
    """(motif, variant): the only seed facts the background's pixel data depends on.

    A small set on purpose: the pixel data (and its deflate output) is shared by every seed with the same
    key, so it is encoded once; seeds differ by palette and label. Consecutive indexes get different motifs.
    """
    return (d[4] + index) % _MOTIFS, d[6] % _VARIANTS


def _cell(kind: int, variant: int, cx: int, cy: int, cols: int, rows: int) -> int:
    """Palette index of one tile; six motifs keep different seeds visibly different."""
    a = 1 + variant % 3
    b = 2 + (variant + 1) % 3
    ccx = cols // 2 + variant % 3 - 1
    ccy = rows // 2 + (variant // 2) % 3 - 1
    if kind == 0:  # diagonal stripes
        v = cx + a * cy
    elif kind == 1:  # concentric squares
        v = max(abs(cx - ccx), abs(cy - ccy))
    elif kind == 2:  # diamonds
        v = abs(cx - ccx) + abs(cy - ccy)
    elif kind == 3:  # checkerboard of two interleaved ramps
        v = ((cx + cy) % 2) * 4 + (cx // 2 + cy // 2) % 4
    elif kind == 4:  # colour bars, reversed in the bottom quarter
        v = cx * _K // cols if cy < rows * 3 // 4 else (cols - 1 - cx) * _K // cols
    else:  # plaid
        v = cx % b + cy % a
    return v % _K


def _edges(total: int, parts: int) -> list[int]:
    return [i * total // parts for i in range(parts + 1)]


def _background(width: int, height: int, key: tuple[int, int]) -> list[bytes]:
    """Tiles + grid lines as rows of palette indices; all rows of a tile band are one shared object."""
    kind, variant = key
    tile = max(4.0, math.sqrt(width * height) / (10 + 2 * variant))
    cols = min(64, max(1, round(width / tile)))
    nrows = min(64, max(1, round(height / tile)))
    xe, ye = _edges(width, cols), _edges(height, nrows)
    line = max(1, round(min(width / cols, height / nrows) / 24))
    lines = min(width // cols, height // nrows) >= 4 * line
    line_row = bytes((_LINE,)) * width
    rows: list[bytes] = []
    for cy in range(nrows):
        row = bytearray(width)
        for cx in range(cols):
            row[xe[cx] : xe[cx + 1]] = bytes((_cell(kind, variant, cx, cy, cols, nrows),)) * (xe[cx + 1] - xe[cx])
        if lines:
            for x in xe[1:-1]:
                row[x - line // 2 : x - line // 2 + line] = line_row[:line]
        rows.extend([bytes(row)] * (ye[cy + 1] - ye[cy]))
    if lines:
        for y in ye[1:-1]:
            rows[y - line // 2 : y - line // 2 + line] = [line_row] * line
    return rows


# -- the info line's dot-matrix font ----------------------------------------------------------------
# Size, seed and index are printed with a 5x7 dot-matrix font scaled by an integer factor: each glyph row
# is k identical pixel rows, so the only per-seed pixels of a card are 7 distinct rows, built from cached
# glyph bytes and deflated in microseconds. (Model and prompt repeat across requests: FreeType, cached.)
_DOT_ROWS: Final = 7
_DOT_CELL: Final = 6  # 5 columns of glyph + 1 of spacing
_DOTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
        "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
        "2": ".###. #...# ....# ...#. ..#.. .#... #####",
        "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
        "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
        "5": "##### #.... ####. ....# ....# #...# .###.",
        "6": "..##. .#... #.... ####. #...# #...# .###.",
        "7": "##### ....# ...#. ..#.. .#... .#... .#...",
        "8": ".###. #...# #...# .###. #...# #...# .###.",
        "9": ".###. #...# #...# .#### ....# ...#. .##..",
        "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
        "s": "..... ..... .#### #.... .###. ....# ####.",
        "e": "..... ..... .###. #...# ##### #.... .###.",
        "d": "....# ....# .##.# #..## #...# #...# .####",
        "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
        "-": "..... ..... ..... ##### ..... ..... .....",
        "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
        " ": "..... ..... ..... ..... ..... ..... .....",
    }
)
_SEED_WIDTH_PROBE: Final = "seed 4294967295  #99"  # the widest info text a layout makes room for


@lru_cache(maxsize=64)
def _dot_rows(scale: int) -> tuple[Mapping[str, bytes], ...]:
    """Per glyph row, char -> that row of the char's cell at ``scale`` (palette indices)."""
    ink, box = bytes((_TEXT,)) * scale, bytes((_BOX,)) * scale
    return tuple(
        MappingProxyType(
            {ch: b"".join(ink if c == "#" else box for c in dots.split()[r]) + box for ch, dots in _DOTS.items()}
        )
        for r in range(_DOT_ROWS)
    )


def _info_text(spec: RenderRequest) -> str:
    text = f"{spec.width}x{spec.height}  seed {spec.seed}  #{spec.index}"
    return "".join(c if c in _DOTS else "?" for c in text)


def _clean(text: str) -> str:
    """The built-in font only has ASCII glyphs; anything else would render as tofu boxes."""
    return " ".join("".join(c if " " <= c <= "~" else "?" for c in text[:_MAX_LABEL_CHARS]).split())


# -- PNG pieces -------------------------------------------------------------------------------------


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """zlib's adler32_combine (not exposed by Python), so spliced deflate pieces need no re-scan."""
    rem = len2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 = (sum1 + (adler2 & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + (adler1 >> 16) + (adler2 >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | (sum2 << 16)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


_EMPTY_STORED_BLOCK: Final = b"\x00\x00\x00\xff\xff"  # what a sync flush emits; 5 bytes, decodes to nothing
_FINAL_BLOCK: Final = b"\x03\x00"  # an empty final fixed-Huffman block: ends the deflate stream
_IEND: Final = _png_chunk(b"IEND", b"")
_ZLIB_IDAT: Final = _png_chunk(b"IDAT", _ZLIB_HEADER)


@dataclass(frozen=True, slots=True)
class _Piece:
    """Rows of a card as one IDAT chunk, its length a multiple of 3 so its base64 splices into any image.

    ``adler``/``length`` describe the raw (filtered) scanlines, for the stream's adler32 trailer.
    """

    chunk: bytes
    b64: bytes
    adler: int
    length: int

    @property
    def size(self) -> int:
        return len(self.chunk) + len(self.b64) + 64


@dataclass(frozen=True, slots=True)
class _CardPieces:
    """The seed-independent parts of PNG cards of one size, background, model and prompt."""

    layout: _Layout | None
    header: bytes  # signature + IHDR
    comment: tuple[bytes, bytes]  # the tEXt comment around "<seed> index=<index>"
    before: tuple[_Piece, ...]  # IDAT pieces above the info line
    after: tuple[_Piece, ...]  # and below it
    base: tuple[bytes, ...]  # the info line's rows without text
    adler_before: int  # adler32 of the scanlines before the info line (from 1)
    adler_after: int  # adler32 of those after it (from 1), to combine
    length_after: int


@dataclass(frozen=True, slots=True)
class _InfoFast:
    """The info line of one size, index and seed length, ready for a seed's digits."""

    fit: int  # dot-matrix scale: each glyph row is 1 literal + fit-1 Up-filtered rows
    row_length: int  # bytes per scanline (filter byte + width)
    glyphs: tuple[Mapping[str, bytes], ...]
    pre: tuple[bytes, ...]  # per glyph row: filter byte, base row start, the glyphs before the seed
    post: tuple[bytes, ...]  # the glyphs after the seed, base row end
    stored: bytes  # the header of a stored deflate block of one scanline
    up: bytes  # deflate of fit-1 Up-filtered rows
    top: bytes  # deflate of the base rows above the glyphs
    top_adler: int
    top_length: int
    bottom: bytes  # and below them
    bottom_adler: int
    bottom_length: int

    @property
    def size(self) -> int:
        return sum(map(len, self.pre)) + sum(map(len, self.post)) + len(self.up) + len(self.top) + 512


def _idat_piece(deflated: bytes, adler: int, length: int, *, b64: bool = True) -> _Piece:
    """Wrap byte-aligned deflate blocks in an IDAT chunk padded (with empty stored blocks) to 3n bytes."""
    deflated += _EMPTY_STORED_BLOCK * ((len(deflated) + 12) % 3)  # each block adds 5 = 2 (mod 3)
    chunk = _png_chunk(b"IDAT", deflated)
    return _Piece(chunk, base64.b64encode(chunk) if b64 else b"", adler, length)


# -- JPEG pieces ------------------------------------------------------------------------------------
_MCU: Final = 16  # 4:2:0: one minimum coded unit is 16x16 pixels
_STRIP_MCUS: Final = 256  # distinct MCUs per row of the strip they are encoded in
_LABEL_SLOT: Final = 1 << 40  # while planning: label-only MCUs are numbered from here
_LABEL_INDICES: Final = bytes(range(_BOX, _TEXT + 1))
_JPEG_SPLICE_OPTIONS: Final[Mapping[str, object]] = MappingProxyType(
    {"quality": 85, "subsampling": 2, "restart_marker_blocks": 1}
)
_RST_CYCLE: Final = tuple(bytes((0xFF, 0xD0 + k % 8)) for k in range(8 + MAX_DIMENSION // _MCU))
_RST_MARKER: Final = re.compile(rb"\xff[\xd0-\xd7]")


_EDIT_STRIPES: Final = _TEXT + 1  # an indexed edit's palette: label colours at their card slots, stripes,
_EDIT_FIRST: Final = _EDIT_STRIPES + 1  # then the posterised source's colours
_EDIT_COLOURS: Final = 256 - _EDIT_FIRST


@dataclass(frozen=True, slots=True)
class _EditSource:
    """An edit's seed-independent inputs at the output size; never modified (shared by threads)."""

    size: tuple[int, int]
    src: Image.Image  # RGB
    posterized: Image.Image
    mask: Image.Image | None  # L, 255 = edit
    indexed: Image.Image | None  # L palette indices: the posterised colours from _EDIT_FIRST, hatching
    colours: Image.Image | None  # RGB, one pixel per posterised colour in index order
    png: tuple[_Piece, _Piece] | None  # IDAT pieces of the indexed rows above and below the label


@dataclass(frozen=True, slots=True)
class _JpegPlan:
    """How to assemble the JPEG cards of one size, background, model, prompt, seed length and index.

    ``strip`` holds the distinct seed-independent MCUs (palette indices) side by side; ``kinds`` are the
    distinct MCU rows as piece numbers (the strip's first, then the seed rectangle's); ``grid`` is the
    kind of each MCU row. ``rect_src`` are the seed rectangle's rows: cropped bytes, or an info-line row.
    """

    header: bytes
    layout: _Layout | None
    cols: int
    strip: tuple[bytes, tuple[int, int]]  # palette indices, size
    n_static: int
    label_strip: tuple[bytes, tuple[int, int]]  # the MCUs in label colours only: encoded once per hue
    n_label: int
    label_key: bytes
    kinds: tuple[tuple[int, ...], ...]
    grid: tuple[int, ...]
    rect: tuple[int, int, int, int] | None
    rect_src: tuple[bytes | int, ...]

    @property
    def size(self) -> int:
        rect = sum(len(r) if isinstance(r, bytes) else 8 for r in self.rect_src)
        return (
            len(self.strip[0])
            + len(self.label_strip[0])
            + 8 * self.cols * len(self.kinds)
            + 8 * len(self.grid)
            + rect
            + 1024
        )


def _crop_padded(row: bytes, x0: int, x1: int, width: int) -> bytes:
    """row[x0:x1], the last pixel repeated past the image's right edge (as a JPEG encoder pads)."""
    return row[x0:x1] if x1 <= width else row[x0:] + row[-1:] * (x1 - width)


def _jpeg_split(data: bytes) -> tuple[bytes, bytes]:
    """(everything up to and including the SOS segment, the entropy-coded data before EOI)."""
    pos = 2
    while data[pos] == 0xFF:
        marker = data[pos + 1]
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            return data[:end], data[end:-2]
        pos = end
    raise ValueError("no SOS segment")  # pragma: no cover - libjpeg always writes one


def _mcu_strip(blocks: list[bytes], per_row: int = 0) -> tuple[bytes, tuple[int, int]]:
    """16x16 blocks side by side, ``per_row`` a row (else balanced rows of <= _STRIP_MCUS), as one
    image's pixels, and its size. The last row is padded with copies of the first block."""
    if not blocks:
        return b"", (per_row * _MCU, 0)
    if not per_row:
        rows = -(-len(blocks) // _STRIP_MCUS)
        per_row = -(-len(blocks) // rows)
    blocks = blocks + [blocks[0]] * (-len(blocks) % per_row)
    strip = b"".join(
        b"".join(block[y * _MCU : (y + 1) * _MCU] for block in blocks[i : i + per_row])
        for i in range(0, len(blocks), per_row)
        for y in range(_MCU)
    )
    return strip, (per_row * _MCU, len(blocks) // per_row * _MCU)


def _jpeg_pieces(pixels: tuple[bytes, tuple[int, int]], palette: bytes) -> list[bytes]:
    """Each MCU's entropy-coded bytes of card pixels (palette indices, size), in raster order."""
    image = Image.frombytes("L", pixels[1], pixels[0])
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", **_JPEG_SPLICE_OPTIONS)
    return _RST_MARKER.split(_jpeg_split(buffer.getvalue())[1])


@lru_cache(maxsize=64)
def _jpeg_header(width: int, height: int) -> bytes:
    """SOI to SOS of a spliced card: libjpeg's own headers (tables, DRI = 1 MCU) with the card's size."""
    buffer = io.BytesIO()
    Image.new("RGB", (_MCU, _MCU)).save(buffer, "JPEG", **_JPEG_SPLICE_OPTIONS)
    header = bytearray(_jpeg_split(buffer.getvalue())[0])
    pos = 2
    while header[pos + 1] != 0xC0:  # SOF0: precision, height, width
        pos += 2 + int.from_bytes(header[pos + 2 : pos + 4], "big")
    header[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
    return bytes(header)


# -- WebP lossless (VP8L) pieces --------------------------------------------------------------------
# A card has <= 16 colours, so VP8L's colour-indexing transform packs two pixels per byte and the palette
# travels in the header. The pixel stream is written here from cached token bits (literal runs, copies of
# the row above), with one fixed set of prefix codes per layout that can code any symbol: only the palette
# and the seed's digits are written per request. libwebp decodes it to exactly the card's pixels.
_CODE_ORDER: Final = (17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
_MAX_COPY: Final = 4096
_ABOVE, _LEFT = 1, 2  # VP8L distance codes of the pixel above and the pixel to the left
_GREEN_SYMBOLS: Final = 256 + 24
_RUN: Final = re.compile(rb"(.)\1*", re.DOTALL)
_NIBBLE_HIGH: Final = bytes((v << 4) & 0xFF for v in range(256))
_REVERSED8: Final = tuple(int(f"{v:08b}"[::-1], 2) for v in range(256))
_Bits = tuple[int, int]  # (value, bit count), written LSB first
_Token = int | tuple[int, int]  # a literal packed pixel, or (length, distance code)


def _cat(chunks: list[_Bits]) -> _Bits:
    value = pos = 0
    for bits, count in chunks:
        value |= bits << pos
        pos += count
    return value, pos


def _prefix(value: int) -> tuple[int, int, int]:
    """(prefix symbol, extra bit count, extra bits) of a VP8L length or distance code (>= 1)."""
    d = value - 1
    if d < 4:
        return d, 0, 0
    high = d.bit_length() - 1
    extra = high - 1
    return 2 * high + (d >> extra & 1), extra, d & ((1 << extra) - 1)


def _huffman_lengths(freqs: list[int], limit: int) -> list[int]:
    """Code lengths (a complete prefix code, none longer than ``limit``) for symbol frequencies."""
    freqs = list(freqs)
    if sum(1 for f in freqs if f) < 2:  # a complete code needs two symbols
        for i in range(len(freqs)):
            if not freqs[i] and sum(1 for f in freqs if f) < 2:
                freqs[i] = 1
    while True:
        heap: list[tuple[int, int, list[int]]] = [(f, i, [i]) for i, f in enumerate(freqs) if f]
        heapq.heapify(heap)
        lengths = [0] * len(freqs)
        tie = len(freqs)
        while len(heap) > 1:
            fa, _, a = heapq.heappop(heap)
            fb, _, b = heapq.heappop(heap)
            for i in a + b:
                lengths[i] += 1
            heapq.heappush(heap, (fa + fb, tie, a + b))
            tie += 1
        if max(lengths) <= limit:
            return lengths
        freqs = [(f + 1) // 2 if f else 0 for f in freqs]


def _canonical(lengths: list[int]) -> list[_Bits]:
    """Per symbol, its canonical code bit-reversed (VP8L reads a code's first bit first) and length."""
    next_code, code = {}, 0
    for length in range(1, max(lengths) + 1):
        next_code[length] = code
        code = (code + lengths.count(length)) << 1
    out: list[_Bits] = []
    for length in lengths:
        if length:
            c = next_code[length]
            next_code[length] += 1
            out.append((int(f"{c:0{length}b}"[::-1], 2), length))
        else:
            out.append((0, 0))
    return out


def _normal_code(lengths: list[int]) -> _Bits:
    """A VP8L normal prefix code: the code lengths, run-length coded with a code-length code."""
    tokens: list[tuple[int, int, int]] = []  # (symbol, extra bit count, extra bits)
    i, n = 0, len(lengths)
    while i < n:
        length, run = lengths[i], 1
        while i + run < n and lengths[i + run] == length:
            run += 1
        i += run
        if length == 0:
            while run >= 3:
                step = min(run, 138)
                tokens.append((18, 7, step - 11) if step >= 11 else (17, 3, step - 3))
                run -= step
            tokens += [(0, 0, 0)] * run
            continue
        tokens.append((length, 0, 0))
        run -= 1
        while run >= 3:
            step = min(run, 6)
            tokens.append((16, 2, step - 3))
            run -= step
        tokens += [(length, 0, 0)] * run
    freqs = [0] * 19
    for symbol, _, _ in tokens:
        freqs[symbol] += 1
    code_lengths = _huffman_lengths(freqs, 7)
    codes = _canonical(code_lengths)
    count = max(4, max(k + 1 for k, sym in enumerate(_CODE_ORDER) if code_lengths[sym]))
    chunks: list[_Bits] = [(0, 1), (count - 4, 4)]
    chunks += [(code_lengths[sym], 3) for sym in _CODE_ORDER[:count]]
    chunks.append((0, 1))  # no max_symbol: every symbol's length follows
    for symbol, extra, bits in tokens:
        chunks += [codes[symbol], (bits, extra)]
    return _cat(chunks)


def _simple_code(*symbols: int) -> _Bits:
    """A VP8L simple prefix code of one (0 bits per symbol) or two 8-bit symbols."""
    if len(symbols) == 1:
        return _cat([(1, 1), (0, 1), (1, 1), (symbols[0], 8)])
    return _cat([(1, 1), (1, 1), (1, 1), (symbols[0], 8), (symbols[1], 8)])


def _pack(row: bytes) -> bytes:
    """Palette indices (< 16), two pixels a byte, the first in the low nibble (VP8L pixel bundling)."""
    if len(row) % 2:
        row += b"\x00"
    low, high = row[0::2], row[1::2].translate(_NIBBLE_HIGH)
    return (int.from_bytes(low, "little") | int.from_bytes(high, "little")).to_bytes(len(low), "little")


def _runs_tokens(packed: bytes) -> list[_Token]:
    """A packed row as literals and copies of the pixel to the left (runs of 3+ equal pixels)."""
    tokens: list[_Token] = []
    for match in _RUN.finditer(packed):
        start, end = match.span()
        value, run = packed[start], end - start
        tokens.append(value)
        run -= 1
        if run < 3:
            tokens += [value] * run
            continue
        while run:
            step = min(run, _MAX_COPY)
            tokens.append((step, _LEFT))
            run -= step
    return tokens


def _above_tokens(count: int) -> list[_Token]:
    tokens: list[_Token] = []
    while count:
        step = min(count, _MAX_COPY)
        tokens.append((step, _ABOVE))
        count -= step
    return tokens


def _rows_tokens(rows: list[bytes], width: int) -> list[_Token]:
    """Rows as tokens: a row equal to the one above is a copy; the first row never refers back."""
    tokens: list[_Token] = []
    packed_width = (width + 1) // 2
    previous: bytes | None = None
    repeat = 0
    for row in rows:
        if row is previous or row == previous:
            repeat += 1
            continue
        tokens += _above_tokens(repeat * packed_width)
        repeat = 0
        tokens += _runs_tokens(_pack(row))
        previous = row
    return tokens + _above_tokens(repeat * packed_width)


class _VP8LCode:
    """The main image's prefix codes, built from token counts; every symbol is codable."""

    def __init__(self, token_lists: list[list[_Token]]) -> None:
        green = [1] * _GREEN_SYMBOLS
        for tokens in token_lists:
            for token in tokens:
                if isinstance(token, int):
                    green[token] += 1
                else:
                    green[256 + _prefix(token[0])[0]] += 1
        self.green = _canonical(_huffman_lengths(green, 15))
        literal = _simple_code(0)  # red, blue, alpha: single-symbol codes, no bits (only green is read)
        # distance symbols 0 (code 1, the pixel above) and 1 (code 2, the pixel to the left): one bit each
        distance = _simple_code(_ABOVE - 1, _LEFT - 1)
        self.header = _cat([_normal_code([c[1] for c in self.green]), literal, literal, literal, distance])
        self.distance = {_ABOVE: (0, 1), _LEFT: (1, 1)}

    def write(self, tokens: list[_Token]) -> _Bits:
        green, distance = self.green, self.distance
        value = pos = 0
        for token in tokens:
            if isinstance(token, int):
                bits, count = green[token]
                value |= bits << pos
                pos += count
                continue
            length, dist = token
            symbol, extra, extra_bits = _prefix(length)
            bits, count = green[256 + symbol]
            value |= (bits | extra_bits << count) << pos
            pos += count + extra
            bits, count = distance[dist]
            value |= bits << pos
            pos += count
        return value, pos


@dataclass(frozen=True, slots=True)
class _WebpPlan:
    """The VP8L cards of one size, background, model, prompt, seed length and index, as cached bits.

    Per request only the palette (``head`` is followed by it) and the seed's digits (per glyph row: ``pre``,
    one unit per digit, ``post``, then ``up`` repeating the row) are written.
    """

    head: _Bits
    mid: _Bits  # the main image's header and the rows above the seed's glyph rows
    pre: tuple[_Bits, ...]
    post: tuple[_Bits, ...]
    units: Mapping[tuple[int, str], _Bits]
    up: _Bits
    after: _Bits

    @property
    def size(self) -> int:
        bits = self.head[1] + self.mid[1] + self.after[1] + sum(b[1] for b in (*self.pre, *self.post))
        return bits // 8 + 64 * len(self.units) + 1024


@cache
def _fixed8_codes() -> _Bits:
    """The palette image's codes: every byte value one 8-bit code (green, red, blue, alpha), no copies."""
    byte = _normal_code([8] * 256)
    return _cat([_normal_code([8] * 256 + [0] * 24), byte, byte, byte, _simple_code(0)])


def _palette_bits(palette: bytes) -> _Bits:
    """The colour table as VP8L stores it: ARGB deltas to the previous entry, green first, 8-bit codes."""
    rev = _REVERSED8
    value, pos, previous = 0, 0, (0, 0, 0, 0)
    for i in range(0, len(palette), 3):
        argb = (255, palette[i], palette[i + 1], palette[i + 2])
        a, r, g, b = ((c - p) & 0xFF for c, p in zip(argb, previous, strict=True))
        value |= (rev[g] | rev[r] << 8 | rev[b] << 16 | rev[a] << 24) << pos
        pos += 32
        previous = argb
    return value, pos


def _riff_webp(bits: _Bits) -> bytes:
    value, count = bits
    data = value.to_bytes((count + 7) // 8, "little")
    pad = b"\x00" if len(data) % 2 else b""
    return b"".join(
        (b"RIFF", struct.pack("<I", 12 + len(data) + len(pad)), b"WEBPVP8L", struct.pack("<I", len(data)), data, pad)
    )


def _open(data: bytes, what: str) -> Image.Image:
    """Decode untrusted bytes; Pillow raises a grab-bag of exception types on hostile input."""
    try:
        image = Image.open(io.BytesIO(data), formats=_INPUT_FORMATS)
        width, height = image.size
        if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > _MAX_SOURCE_PIXELS:
            raise InvalidImage(f"{what} is too large ({width}x{height}; max side {MAX_DIMENSION})")
        image.load()
    except InvalidImage:
        raise
    except Exception as exc:
        raise InvalidImage(f"{what} is not a decodable PNG, JPEG, WebP or GIF image") from exc
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _transparent_area(image: Image.Image) -> Image.Image | None:
    """Inverted alpha (255 = transparent) when the image has any transparency, else None."""
    if not _has_alpha(image):
        return None
    alpha = image.convert("RGBA").getchannel("A")
    low, _ = alpha.getextrema()
    return ImageOps.invert(alpha) if isinstance(low, int) and low < 255 else None


def _edit_mask(image: Image.Image) -> Image.Image:
    """Where to edit, as L (255 = edit). Transparent = edit (OpenAI) wins over white = edit (NanoGPT)."""
    transparent = _transparent_area(image)
    return transparent if transparent is not None else image.convert("L")


def image_info(data: bytes) -> ImageInfo:
    """Identify an upload cheaply (header only), so validation never pays for a full decode."""
    try:
        with Image.open(io.BytesIO(data), formats=_INPUT_FORMATS) as image:
            fmt = (image.format or "").lower()
            width, height = image.size
    except Exception as exc:
        raise InvalidImage("not a PNG, JPEG, WebP or GIF image") from exc
    return ImageInfo(fmt, width, height)


def _comment(spec: RenderRequest) -> bytes:
    """A PNG tEXt note so tools like exiftool/identify show what the mock was asked for."""
    prompt = _clean(spec.prompt)
    text = (
        f"nanogpt-image-mock model={_clean(spec.model)} size={spec.width}x{spec.height} "
        f"seed={spec.seed} index={spec.index} prompt={prompt}"
    ).encode("latin-1")
    return text


class Renderer:
    """Renders cards and edits, holding the caches; create one per app instance and share it.

    Safe to call from many threads at once (see the module docstring).

    Two caches: encoded images by :class:`RenderRequest` (``cache_bytes``; skipped with ``cache=False``, for
    images nobody can ask for again) and the seed-independent parts (``pieces_bytes``: the deflated
    background and label rows shared by every seed of one size, model and prompt, the JPEG/WebP plans and
    per-hue label MCUs, an edit's prepared source).
    """

    def __init__(self, cache_bytes: int = 256 * 1024 * 1024, *, pieces_bytes: int = 32 * 1024 * 1024) -> None:
        if cache_bytes < 0 or pieces_bytes < 0:
            raise ValueError("cache sizes must be >= 0")
        self._cache = BytesLRU(cache_bytes)
        self._pieces: SizedLRU[object] = SizedLRU(pieces_bytes)
        self._text_lock = threading.Lock()  # fonts, line images, layouts (FreeType is not thread-safe)
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._lines: OrderedDict[tuple[str, int, int], Image.Image | None] = OrderedDict()
        self._layouts: dict[tuple[int, int], _Layout | None] = {}
        self._runs_lock = threading.Lock()
        self._runs: dict[tuple[int, int], tuple[bytes, int, int]] = {}
        self._has_freetype = bool(features.check_module("freetype2"))

    # -- public API ----------------------------------------------------------------------------------

    def render(self, spec: RenderRequest, *, cache: bool = True) -> bytes:
        """A test card for a generation request; repeated identical requests are served from cache.

        ``cache=False``: do not keep the result (an unseeded request's image is never asked for again).
        """
        cached = self._cache.get(spec)
        if cached is not None:
            return cached
        if spec.output_format == "png":
            data = b"".join(self._png_parts(spec, b64=False))
        elif spec.output_format == "jpeg":
            data = self._jpeg(spec)
        else:
            data = self._webp(spec)
        if cache:
            self._cache.put(spec, data)
        return data

    def render_b64_json(self, spec: RenderRequest, *, cache: bool = True) -> bytes:
        """``render`` as a JSON string token (``"<base64>"``): responses embed it as is, so a repeated
        request copies the image once instead of encoding, decoding and escaping it. A PNG is spliced
        from the pre-encoded base64 of its cached pieces; only the per-seed parts are encoded."""
        key = ("b64-json", spec)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if spec.output_format == "png":
            data = b"".join(self._png_parts(spec, b64=True, quote=True))
        else:
            data = b'"' + base64.b64encode(self.render(spec, cache=cache)) + b'"'
        if cache:
            self._cache.put(key, data)
        return data

    def render_edit(
        self,
        spec: RenderRequest,
        source: bytes,
        mask: bytes | None = None,
        *,
        keep_source_size: bool = True,
        cache: bool = True,
    ) -> bytes:
        """An edit visibly derived from ``source``: tinted/posterised where the mask says, plus the label.

        Output size is the source size when ``keep_source_size`` else ``spec.width`` x ``spec.height``.
        Mask: white = edit (NanoGPT); a mask with transparency uses transparent = edit (OpenAI); without
        a mask, a source with transparency uses its own transparent area (OpenAI), else all is edited.
        Raises :class:`InvalidImage` when the source or mask cannot be decoded.
        """
        key = (
            "edit",
            spec,
            hashlib.sha256(source).digest(),
            None if mask is None else hashlib.sha256(mask).digest(),
            keep_source_size,
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = self._edit(spec, source, mask, keep_source_size, key[2:4])
        if cache:
            self._cache.put(key, data)
        return data

    def clear(self) -> None:
        """Drop every cache (encoded images, pieces, text, layouts), e.g. between test runs."""
        self._cache.clear()
        self._pieces.clear()
        with self._text_lock:
            self._lines.clear()
            self._layouts.clear()
        with self._runs_lock:
            self._runs.clear()

    def cache_info(self) -> CacheInfo:
        """Encoded-bytes cache statistics."""
        return self._cache.info()

    def label_box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The label's (x0, y0, x1, y1) for a size, or None when the image is too small for text."""
        layout = self._layout(width, height)
        return None if layout is None else layout.box

    # -- cards ---------------------------------------------------------------------------------------

    def _card(self, spec: RenderRequest) -> tuple[list[bytes], bytes]:
        """All rows of a card (palette indices) and its palette: the Pillow formats' input."""
        d = _digest("card", spec.prompt, spec.seed)
        rows = _background(spec.width, spec.height, _background_key(d, spec.index))
        layout = self._layout(spec.width, spec.height)
        if layout is not None:
            y0, y1 = layout.box[1], layout.box[3]
            head, base, tail = self._label_bands(spec.model, spec.prompt, layout)
            rows[y0:y1] = [*head, *_expand(_info_runs(layout, base, _info_text(spec))), *tail]
        return rows, _palette(d, spec.index)

    # -- label ---------------------------------------------------------------------------------------

    def _font(self, size: int) -> ImageFont.FreeTypeFont:
        """Caller holds _text_lock."""
        font = self._fonts.get(size)
        if font is None:
            loaded = ImageFont.load_default(size=size)
            assert isinstance(loaded, ImageFont.FreeTypeFont)  # guaranteed when FreeType is available
            font = self._fonts[size] = loaded
        return font

    def _layout(self, width: int, height: int) -> _Layout | None:
        if not self._has_freetype:
            return None
        key = (width, height)
        layout = self._layouts.get(key, False)
        if layout is not False:
            return layout  # type: ignore[return-value]
        with self._text_lock:
            if key not in self._layouts:
                if len(self._layouts) >= _SMALL_CACHE_ENTRIES:
                    self._layouts.clear()
                self._layouts[key] = self._compute_layout(width, height)
            return self._layouts[key]

    def _compute_layout(self, width: int, height: int) -> _Layout | None:
        """Pick the richest label that stays readable, shrinking the font until it fits.

        The label is a band across the full width, so its rows hold no background: they are the same for
        every seed's background and are encoded once per size and text.
        """
        options = []
        for kinds, wdiv, hdiv in _LAYOUTS:
            px = min(int(min(width / wdiv, height / hdiv)), _MAX_FONT_PX)
            if px >= _MIN_FONT_PX:
                options.append((kinds, px))
        if not options:
            return None
        best = max(px for _, px in options)
        kinds, px = next(o for o in options if o[1] >= 0.6 * best)
        probe = len(f"{width}x{height}  {_SEED_WIDTH_PROBE}")
        while px >= _MIN_FONT_PX:
            pad, border, gap = max(2, px // 3), max(1, px // 14), max(1, px // 6)
            avail = width - 2 * (pad + border)
            room = avail if kinds != ("all",) else avail // 2  # "all": the info text, then the model id
            scale = max(1, min(round(px / 10), room // (probe * _DOT_CELL)))
            sizes = tuple(
                scale if k in ("info", "all") else max(_MIN_FONT_PX, round(px * 0.6)) if k == "prompt" else px
                for k in kinds
            )
            tops, heights, y = [], [], pad + border
            for kind, size in zip(kinds, sizes, strict=True):
                if kind == "info":
                    h = _DOT_ROWS * size
                elif kind == "all":
                    ascent, descent = self._font(px).getmetrics()
                    h = max(ascent + descent, _DOT_ROWS * size)
                else:
                    ascent, descent = self._font(size).getmetrics()
                    h = ascent + descent
                tops.append(y)
                heights.append(h)
                y += h + gap
            box_h = y - gap + pad + border
            if box_h <= height - 2 and avail >= 4 * px:
                y0 = (height - box_h) // 2
                info = kinds.index("all") if "all" in kinds else kinds.index("info")
                return _Layout(
                    (0, y0, width, y0 + box_h), kinds, sizes, tuple(tops), tuple(heights), pad, border, px, info
                )
            px -= 1
        return None

    def _line(self, text: str, size: int, max_width: int) -> Image.Image | None:
        """One line of text as palette indices; caller holds _text_lock. Cached: models/prompts repeat."""
        key = (text, size, max_width)
        if key in self._lines:
            self._lines.move_to_end(key)
            return self._lines[key]
        font = self._font(size)
        if font.getlength(text) > max_width:  # keep the longest prefix that fits, marked with "..."
            lo, hi = 0, len(text)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if font.getlength(text[:mid] + "...") <= max_width:
                    lo = mid
                else:
                    hi = mid - 1
            text = text[:lo] + "..." if lo else ""
        line: Image.Image | None = None
        if text and max_width > 0:
            left, _, right, _ = font.getbbox(text)
            x = -min(0, math.floor(left))
            ascent, descent = font.getmetrics()
            mask = Image.new("L", (max(1, min(max_width, math.ceil(right) + x)), ascent + descent))
            ImageDraw.Draw(mask).text((x, 0), text, fill=255, font=font)
            line = mask.point(_TEXT_LUT)
        self._lines[key] = line
        if len(self._lines) > _SMALL_CACHE_ENTRIES:
            self._lines.popitem(last=False)
        return line

    def _label_bands(self, model: str, prompt: str, layout: _Layout) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """The label's rows in three bands: above the info line, the info line without its text, below.

        Only the middle band's text depends on the seed; the others depend on model and prompt only.
        """
        x0, y0, x1, y1 = layout.box
        width = x1 - x0
        tile = Image.new("L", (width, y1 - y0), _BOX)
        ImageDraw.Draw(tile).rectangle((0, 0, width - 1, tile.height - 1), outline=_TEXT, width=layout.border)
        inner = layout.pad + layout.border
        avail = width - 2 * inner
        texts = {"model": _clean(model), "prompt": '"' + _clean(prompt) + '"', "all": _clean(model)}
        with self._text_lock:
            for kind, size, top in zip(layout.kinds, layout.sizes, layout.tops, strict=True):
                if kind == "info":
                    continue
                if kind == "all":  # the model id after the (widest) info text
                    left = inner + avail // 2
                    line = self._line(texts[kind], layout.px, width - inner - left)
                    if line is not None:
                        tile.paste(line, (left, top))
                    continue
                line = self._line(texts[kind], size, avail)
                if line is not None:
                    tile.paste(line, ((width - line.width) // 2, top))
        raw = tile.tobytes()
        rows = [raw[i : i + width] for i in range(0, len(raw), width)]
        top, height = layout.tops[layout.info], layout.heights[layout.info]
        return rows[:top], rows[top : top + height], rows[top + height :]

    def _label(self, spec: RenderRequest) -> tuple[tuple[int, int, int, int], Image.Image] | None:
        """The label box as an L image of palette indices, and where it goes (for edits)."""
        layout = self._layout(spec.width, spec.height)
        if layout is None:
            return None
        key = ("label", layout, spec.model, spec.prompt)
        bands = cast("tuple[bytes, list[bytes], bytes] | None", self._pieces.get(key))
        if bands is None:
            head, base, tail = self._label_bands(spec.model, spec.prompt, layout)
            bands = (b"".join(head), base, b"".join(tail))
            self._pieces.put_sized(key, bands, 2 * (len(bands[0]) + len(bands[2])) + 2 * len(b"".join(base)) + 256)
        head_bytes, base, tail_bytes = bands
        info = b"".join(_expand(_info_runs(layout, list(base), _info_text(spec))))
        x0, y0, x1, y1 = layout.box
        return layout.box, Image.frombytes("L", (x1 - x0, y1 - y0), head_bytes + info + tail_bytes)

    # -- PNG -----------------------------------------------------------------------------------------

    def _png_parts(self, spec: RenderRequest, *, b64: bool, quote: bool = False) -> list[bytes]:
        """The PNG as a list of byte strings (or their base64, each part aligned to 3 bytes).

        Layout: signature, IHDR, PLTE, tEXt, a 2-byte IDAT (zlib header), then one IDAT per band of rows
        (background above the label, label head, the info line, label tail, background below) and a last
        IDAT with the final block and adler32. Every band but the info line is a cached piece shared by all
        seeds of its background/model/prompt; the info line is 7 distinct rows.
        """
        width, height = spec.width, spec.height
        d = _digest("card", spec.prompt, spec.seed)
        card = self._card_pieces(width, height, _background_key(d, spec.index), spec.model, spec.prompt)
        pieces = list(card.before)
        adler = card.adler_before
        if card.layout is not None:
            fast = self._info_fast(card.layout, card.base, spec, adler)
            if fast is None:  # e.g. the "all" layout: the model id shares the info line's rows
                fast = _deflate_runs(_info_runs(card.layout, list(card.base), _info_text(spec)), adler)
            deflated, adler = fast
            pieces.append(_idat_piece(deflated, 0, 0, b64=False))
        if card.length_after:
            adler = _adler32_combine(adler, card.adler_after, card.length_after)
        pieces += card.after
        front = card.header + _png_chunk(b"PLTE", _palette(d, spec.index))
        # the comment is padded so that everything before the first piece is 3n bytes: base64 then splices
        comment = b"".join((card.comment[0], str(spec.seed).encode(), b" index=", b"%d" % spec.index, card.comment[1]))
        comment += b" " * (-(len(front) + len(comment) + 12 + len(_ZLIB_IDAT)) % 3)
        front += _png_chunk(b"tEXt", comment) + _ZLIB_IDAT
        end = _png_chunk(b"IDAT", _FINAL_BLOCK + struct.pack(">I", adler)) + _IEND
        if not b64:
            return [front, *(p.chunk for p in pieces), end]
        parts = [b'"', base64.b64encode(front)] if quote else [base64.b64encode(front)]
        parts += [p.b64 or base64.b64encode(p.chunk) for p in pieces]
        parts.append(base64.b64encode(end))
        if quote:
            parts.append(b'"')
        return parts

    def _card_pieces(self, width: int, height: int, bg: tuple[int, int], model: str, prompt: str) -> _CardPieces:
        """Everything of a PNG card but its palette, comment and info line: one look-up per request."""
        key = ("card", width, height, bg, model, prompt)
        card = cast("_CardPieces | None", self._pieces.get(key))
        if card is not None:
            return card
        layout = self._layout(width, height)
        header = _PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
        if layout is None:
            before: tuple[_Piece, ...] = (self._bg_piece(width, height, bg, 0, height),)
            after: tuple[_Piece, ...] = ()
            base: tuple[bytes, ...] = ()
        else:
            y0, y1 = layout.box[1], layout.box[3]
            head, tail = self._label_pieces(model, prompt, layout)
            before = (self._bg_piece(width, height, bg, 0, y0), head)
            after = (tail, self._bg_piece(width, height, bg, y1, height))
            base = tuple(self._info_base(model, layout))
        adler_before = 1
        for piece in before:
            adler_before = _adler32_combine(adler_before, piece.adler, piece.length)
        adler_after = 1
        for piece in after:
            adler_after = _adler32_combine(adler_after, piece.adler, piece.length)
        sample = _comment(RenderRequest(model, prompt, width, height, 0, 0)).decode("latin-1")
        comment = (
            b"Comment\x00" + sample[: sample.index(" seed=") + 6].encode("latin-1"),
            sample[sample.index(" prompt=") :].encode("latin-1"),
        )
        card = _CardPieces(
            layout, header, comment, before, after, base, adler_before, adler_after, sum(p.length for p in after)
        )
        self._pieces.put_sized(key, card, 256 + len(header))  # the pieces themselves are accounted for separately
        return card

    def _info_fast(
        self, layout: _Layout, base: tuple[bytes, ...], spec: RenderRequest, adler: int
    ) -> tuple[bytes, int] | None:
        """The info line's deflate blocks and the adler32 continued from ``adler``, without zlib work.

        Everything but the seed's digits is cached per size, index and seed length: the base rows above
        and below the glyphs and the Up-filtered repeats of each glyph row as deflate pieces; the 7 glyph
        rows go in as stored blocks (about 7 KB at 1024 px, instead of ~25 µs of compression).
        None when the generic path must draw it: the "all" layout (the model id shares the info line's
        rows) or a text too long for the line.
        """
        if layout.kinds == ("all",):
            return None
        seed = str(spec.seed)
        key = ("info", layout, len(seed), spec.index)
        fast = cast("_InfoFast | None", self._pieces.get(key))
        if fast is None:
            fast = self._make_info_fast(layout, base, spec)
            if fast is None:
                return None
            self._pieces.put_sized(key, fast, fast.size)
        parts = [fast.top] if fast.top else []
        if fast.top_length:
            adler = _adler32_combine(adler, fast.top_adler, fast.top_length)
        glyphs, up, m, n = fast.glyphs, fast.up, fast.fit - 1, fast.row_length
        for r in range(_DOT_ROWS):
            literal = b"".join((fast.pre[r], *map(glyphs[r].__getitem__, seed), fast.post[r]))
            parts += (fast.stored, literal, up)
            adler = zlib.adler32(literal, adler)
            if m:  # m Up-filtered rows: a 2 then zeros, each; adler32 in closed form
                lo, hi = adler & 0xFFFF, adler >> 16
                adler = (lo + 2 * m) % _ADLER_BASE | (hi + n * (m * lo + m * (m + 1))) % _ADLER_BASE << 16
        if fast.bottom_length:
            parts.append(fast.bottom)
            adler = _adler32_combine(adler, fast.bottom_adler, fast.bottom_length)
        return b"".join(parts), adler

    def _make_info_fast(self, layout: _Layout, base: tuple[bytes, ...], spec: RenderRequest) -> _InfoFast | None:
        text = _info_text(spec)
        fit, left, top, kept = _info_geometry(layout, len(base), len(text))
        if kept < len(text):
            return None
        seed_at = len(text) - len(str(spec.seed)) - len(f"  #{spec.index}")
        seed_end, text_w = seed_at + len(str(spec.seed)), len(text) * _DOT_CELL * fit
        glyphs = _dot_rows(fit)
        ref = base[0]
        pre = tuple(b"\x00" + ref[:left] + b"".join(glyphs[r][c] for c in text[:seed_at]) for r in range(_DOT_ROWS))
        post = tuple(b"".join(glyphs[r][c] for c in text[seed_end:]) + ref[left + text_w :] for r in range(_DOT_ROWS))
        n = len(ref) + 1
        rest = len(base) - top - _DOT_ROWS * fit
        up = b""
        if fit > 1:
            compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 6, zlib.Z_RLE)
            up = compressor.compress((b"\x02" + bytes(n - 1)) * (fit - 1)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        top_deflated, top_adler = _deflate_runs([(ref, top)] if top else [])
        bottom_deflated, bottom_adler = _deflate_runs([(ref, rest)] if rest else [])
        return _InfoFast(
            fit,
            n,
            glyphs,
            pre,
            post,
            struct.pack("<BHH", 0, n, n ^ 0xFFFF),
            up,
            top_deflated,
            top_adler,
            top * n,
            bottom_deflated,
            bottom_adler,
            rest * n,
        )

    def _bg_piece(self, width: int, height: int, bg: tuple[int, int], top: int, bottom: int) -> _Piece:
        key = ("bg", width, height, bg, top, bottom)
        piece = cast("_Piece | None", self._pieces.get(key))
        if piece is None:
            rows = _background(width, height, bg)[top:bottom]
            piece = _idat_piece(*self._deflate_rows(rows))
            self._pieces.put_sized(key, piece, piece.size)
        return piece

    def _label_pieces(self, model: str, prompt: str, layout: _Layout) -> tuple[_Piece, _Piece]:
        """The label bands above and below the info line: they depend on model and prompt, not the seed."""
        head_key = ("head", layout, model)
        tail_key = ("tail", layout, prompt)
        head = cast("_Piece | None", self._pieces.get(head_key))
        tail = cast("_Piece | None", self._pieces.get(tail_key))
        if head is None or tail is None:
            head_rows, _, tail_rows = self._label_bands(model, prompt, layout)
            head = _idat_piece(*self._deflate_rows(head_rows))
            tail = _idat_piece(*self._deflate_rows(tail_rows))
            self._pieces.put_sized(head_key, head, head.size)
            self._pieces.put_sized(tail_key, tail, tail.size)
        return head, tail

    def _info_base(self, model: str, layout: _Layout) -> list[bytes]:
        """The info line's rows before its text is drawn (the model id shares them in the "all" layout).

        Equal rows are made one object, so the info line's rows repeat by identity and encode as runs.
        """
        key = ("base", layout, model if layout.kinds == ("all",) else "")
        base = cast("list[bytes] | None", self._pieces.get(key))
        if base is None:
            unique: dict[bytes, bytes] = {}
            base = [unique.setdefault(row, row) for row in self._label_bands(model, "", layout)[1]]
            self._pieces.put_sized(key, base, sum(map(len, unique)) + 8 * len(base) + 64)
        return base

    def _zero_run(self, width: int, log2: int) -> tuple[bytes, int, int]:
        """(raw deflate, adler32, length) of 2**log2 Up-filtered identical rows: all zeros, so cacheable."""
        key = (width, log2)
        with self._runs_lock:
            hit = self._runs.get(key)
        if hit is not None:
            return hit
        if log2 <= _DIRECT_RUN_LOG2:
            raw = (b"\x02" + bytes(width)) * (1 << log2)
            compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
            piece = (compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH), zlib.adler32(raw), len(raw))
        else:  # deflate pieces ending in a sync flush concatenate; doubling avoids scanning huge runs
            half, adler, length = self._zero_run(width, log2 - 1)
            piece = (half + half, _adler32_combine(adler, adler, length), 2 * length)
        with self._runs_lock:
            if len(self._runs) >= _SMALL_CACHE_ENTRIES:
                self._runs.clear()
            self._runs[key] = piece
        return piece

    def _deflate_rows(self, rows: list[bytes]) -> tuple[bytes, int, int]:
        """(byte-aligned deflate blocks, adler32, raw length) of rows as filtered PNG scanlines.

        A row equal to the one above becomes an Up-filtered zero row; long runs of them are spliced in from
        cached deflate pieces. Starts from an empty dictionary, so the result can follow any other piece.
        """
        if not rows:
            return b"", 1, 0
        width = len(rows[0])
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        parts: list[bytes] = []
        adler, total = 1, 0
        literal: list[bytes] = []
        zero_row = b"\x02" + bytes(width)

        def flush_literal() -> None:
            nonlocal adler, total
            if literal:
                data = b"".join(literal)
                adler = zlib.adler32(data, adler)
                total += len(data)
                parts.append(compressor.compress(data))
                literal.clear()

        y, height = 0, len(rows)
        while y < height:
            row = rows[y]
            literal += (b"\x00", row)
            y += 1
            run = 0
            while y + run < height and rows[y + run] == row:
                run += 1
            if run < _SHORT_RUN:
                literal.extend([zero_row] * run)
            else:
                flush_literal()
                parts.append(compressor.flush(zlib.Z_FULL_FLUSH))  # no back-references across splices
                for bit in range(run.bit_length()):
                    if run >> bit & 1:
                        piece, piece_adler, length = self._zero_run(width, bit)
                        parts.append(piece)
                        adler = _adler32_combine(adler, piece_adler, length)
                        total += length
            y += run
        flush_literal()
        parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
        return b"".join(parts), adler, total

    # -- JPEG ----------------------------------------------------------------------------------------

    def _jpeg(self, spec: RenderRequest) -> bytes:
        """A JPEG card spliced from independently coded MCUs: only the distinct ones are encoded.

        Restart markers after every MCU make each one's entropy-coded bytes self-contained (DC prediction
        restarts, byte-aligned), and the tables are fixed (quality 85, standard Huffman tables, 4:2:0), so
        an MCU's bytes depend on its pixels only. A card has a few hundred distinct 16x16 blocks: they are
        encoded side by side as a small strip in the seed's colours (the seed's digits as a second small
        image) and the picture is assembled from them. The decoded pixels equal a whole-image encode's.
        """
        d = _digest("card", spec.prompt, spec.seed)
        plan = self._jpeg_plan(spec, d)
        palette = _palette(d, spec.index)
        strip, (strip_width, strip_height) = plan.strip
        n_rect = 0
        if plan.rect is not None:
            layout = cast("_Layout", plan.layout)
            info = _expand(_info_runs(layout, list(self._info_base(spec.model, layout)), _info_text(spec)))
            x0, x1 = plan.rect[0] * _MCU, plan.rect[2] * _MCU
            width = spec.width
            rows = [src if isinstance(src, bytes) else _crop_padded(info[src], x0, x1, width) for src in plan.rect_src]
            n_rect = (plan.rect[2] - plan.rect[0]) * (plan.rect[3] - plan.rect[1])
            strip = b"".join(rows) + strip
            strip_height += len(rows)
        encoded = _jpeg_pieces((strip, (strip_width, strip_height)), palette) if strip else []
        pieces = encoded[n_rect : n_rect + plan.n_static]
        if plan.n_label:
            hue_key = ("jpeg-label", plan.label_key, palette[3 * _BOX : 3 * _BOX + 3])  # the box colour: the hue
            label = cast("list[bytes] | None", self._pieces.get(hue_key))
            if label is None:
                label = _jpeg_pieces(plan.label_strip, palette)[: plan.n_label]
                self._pieces.put_sized(hue_key, label, sum(map(len, label)) + 48 * len(label) + 128)
            pieces += label
        pieces += encoded[:n_rect]
        cols = plan.cols
        out = [plan.header]
        built: dict[tuple[int, int], bytes] = {}
        phase = 0
        for kind in plan.grid:
            row = built.get((kind, phase))
            if row is None:
                parts: list[bytes] = [b""] * (2 * cols)
                parts[0::2] = map(pieces.__getitem__, plan.kinds[kind])
                parts[1::2] = _RST_CYCLE[phase : phase + cols]
                row = built[kind, phase] = b"".join(parts)
            out.append(row)
            phase = (phase + cols) % 8
        out[-1] = out[-1][:-2]  # no restart marker after the last MCU
        out.append(b"\xff\xd9")
        return b"".join(out)

    def _jpeg_plan(self, spec: RenderRequest, d: bytes) -> _JpegPlan:
        """The MCU layout of the cards of one size, background, model, prompt, seed length and index."""
        width, height = spec.width, spec.height
        bg = _background_key(d, spec.index)
        key = ("jpeg", width, height, bg, spec.model, spec.prompt, len(str(spec.seed)), spec.index)
        plan = cast("_JpegPlan | None", self._pieces.get(key))
        if plan is not None:
            return plan
        layout = self._layout(width, height)
        rows, _ = self._card(spec)
        cols, mcu_rows = -(-width // _MCU), -(-height // _MCU)
        pad = cols * _MCU - width
        unique: dict[bytes, bytes] = {}  # equal rows made one object, so equal bands are found by identity
        padded = [unique.setdefault(row, row) for row in (row + row[-1:] * pad if pad else row for row in rows)]
        padded += [padded[-1]] * (mcu_rows * _MCU - height)
        rect = self._jpeg_rect(spec, layout)
        c0, r0, c1, r1 = rect if rect is not None else (0, 0, 0, 0)
        slots: dict[bytes, int] = {}
        label_slots: dict[bytes, int] = {}
        kinds: dict[tuple[int, ...], int] = {}
        by_band: dict[tuple[int, ...], int] = {}
        grid: list[int] = []
        for my in range(mcu_rows):
            band = padded[my * _MCU : (my + 1) * _MCU]
            in_rect = r0 <= my < r1
            band_key = tuple(map(id, band))
            if not in_rect and band_key in by_band:
                grid.append(by_band[band_key])
                continue
            ids: list[int] = []
            flat = band.count(band[0]) == _MCU  # one row 16 times: a block is 16 copies of a slice
            for mx in range(cols):
                if in_rect and c0 <= mx < c1:
                    ids.append(-1 - ((my - r0) * (c1 - c0) + mx - c0))  # the seed's MCUs, numbered later
                    continue
                x = mx * _MCU
                block = band[0][x : x + _MCU] * _MCU if flat else b"".join([r[x : x + _MCU] for r in band])
                slot = slots.get(block)
                if slot is None:
                    slot = label_slots.get(block)
                    if slot is not None:
                        slot += _LABEL_SLOT
                    elif not block.translate(None, _LABEL_INDICES):  # label colours only: one encode a hue
                        slot = _LABEL_SLOT + label_slots.setdefault(block, len(label_slots))
                    else:
                        slot = slots.setdefault(block, len(slots))
                ids.append(slot)
            kind = kinds.setdefault(tuple(ids), len(kinds))
            if not in_rect:
                by_band[band_key] = kind
            grid.append(kind)
        n_static, n_label = len(slots), len(label_slots)
        # the seed's rectangle goes on top of the strip, which is as wide, so one encode makes both
        strip, label_strip = _mcu_strip(list(slots), c1 - c0), _mcu_strip(list(label_slots))

        def number(i: int) -> int:
            if i < 0:  # the seed's MCUs come last
                return n_static + n_label - 1 - i
            return n_static + i - _LABEL_SLOT if i >= _LABEL_SLOT else i

        rect_src: list[bytes | int] = []
        if rect is not None:
            assert layout is not None
            info_top = layout.box[1] + layout.tops[layout.info]
            info_rows = layout.heights[layout.info]
            for y in range(r0 * _MCU, r1 * _MCU):
                y = min(y, height - 1)
                inside = info_top <= y < info_top + info_rows
                rect_src.append(y - info_top if inside else _crop_padded(rows[y], c0 * _MCU, c1 * _MCU, width))
        plan = _JpegPlan(
            header=_jpeg_header(width, height),
            layout=layout,
            cols=cols,
            strip=strip,
            n_static=n_static,
            label_strip=label_strip,
            n_label=n_label,
            label_key=hashlib.sha256(label_strip[0]).digest() if n_label else b"",
            kinds=tuple(tuple(map(number, ids)) for ids in kinds),
            grid=tuple(grid),
            rect=rect,
            rect_src=tuple(rect_src),
        )
        self._pieces.put_sized(key, plan, plan.size)
        return plan

    def _jpeg_rect(self, spec: RenderRequest, layout: _Layout | None) -> tuple[int, int, int, int] | None:
        """The MCUs (col0, row0, col1, row1) the seed's digits touch: the only seed-dependent pixel data."""
        if layout is None:
            return None
        text = _info_text(spec)
        fit, left, top, kept = _info_geometry(layout, layout.heights[layout.info], len(text))
        seed_at = len(text) - len(str(spec.seed)) - len(f"  #{spec.index}")
        end = min(seed_at + len(str(spec.seed)), kept)
        if end <= seed_at:
            return None
        x0, x1 = left + seed_at * _DOT_CELL * fit, left + end * _DOT_CELL * fit
        y0 = layout.box[1] + layout.tops[layout.info] + top
        y1 = y0 + _DOT_ROWS * fit
        return x0 // _MCU, y0 // _MCU, -(-x1 // _MCU), -(-y1 // _MCU)

    # -- WebP ----------------------------------------------------------------------------------------

    def _webp(self, spec: RenderRequest) -> bytes:
        """A lossless WebP card written from cached bits: the palette and the seed's digits per request."""
        d = _digest("card", spec.prompt, spec.seed)
        plan = self._webp_plan(spec, d)
        if plan is None:  # a layout without a fast path: libwebp
            rows, palette = self._card(spec)
            return _save(_card_image(spec.width, spec.height, rows, palette).convert("RGB"), "webp", card=True)
        chunks = [plan.head, _palette_bits(_palette(d, spec.index)), plan.mid]
        if plan.pre:
            seed, units, up = str(spec.seed), plan.units, plan.up
            for r, (pre, post) in enumerate(zip(plan.pre, plan.post, strict=True)):
                chunks.append(pre)
                chunks += [units[r, c] for c in seed]
                chunks += (post, up)
        chunks.append(plan.after)
        return _riff_webp(_cat(chunks))

    def _webp_plan(self, spec: RenderRequest, d: bytes) -> _WebpPlan | None:
        width, height = spec.width, spec.height
        seed = str(spec.seed)
        key = ("webp", width, height, _background_key(d, spec.index), spec.model, spec.prompt, len(seed), spec.index)
        plan = cast("_WebpPlan | bool | None", self._pieces.get(key))
        if plan is not None:
            return None if plan is False else cast("_WebpPlan", plan)
        plan = self._make_webp_plan(spec, seed)
        self._pieces.put_sized(key, False if plan is None else plan, 64 if plan is None else plan.size)
        return plan

    def _make_webp_plan(self, spec: RenderRequest, seed: str) -> _WebpPlan | None:
        width, height = spec.width, spec.height
        layout = self._layout(width, height)
        rows, _ = self._card(spec)
        packed_width = (width + 1) // 2
        glyph_rows: list[tuple[list[_Token], list[_Token]]] = []
        units: dict[tuple[int, str], list[_Token]] = {}
        up: list[_Token] = []
        gy0 = gy1 = height
        if layout is not None:
            if layout.kinds == ("all",):
                return None
            text = _info_text(spec)
            fit, left, top, kept = _info_geometry(layout, layout.heights[layout.info], len(text))
            if kept < len(text):
                return None
            seed_at = len(text) - len(seed) - len(f"  #{spec.index}")
            x0 = left + seed_at * _DOT_CELL * fit
            odd = x0 & 1  # units start on a byte: an odd start takes the previous cell's spacing pixel
            x0 -= odd
            x1 = x0 + len(seed) * _DOT_CELL * fit
            gy0 = layout.box[1] + layout.tops[layout.info] + top
            gy1 = gy0 + _DOT_ROWS * fit
            glyphs = _dot_rows(fit)
            for r in range(_DOT_ROWS):
                cells = {c: (bytes((_BOX,)) + glyphs[r][c][:-1]) if odd else glyphs[r][c] for c in "0123456789-"}
                row = rows[gy0 + r * fit]
                if row[x0:x1] != b"".join(cells[c] for c in seed) or any(
                    rows[gy0 + r * fit + k] != row for k in range(1, fit)
                ):
                    return None  # pragma: no cover - the info line is drawn this way
                glyph_rows.append((_runs_tokens(_pack(row[:x0])), _runs_tokens(_pack(row[x1:]))))
                units.update({(r, c): _runs_tokens(_pack(cell)) for c, cell in cells.items()})
            up = _above_tokens((fit - 1) * packed_width)
        before, after = _rows_tokens(rows[:gy0], width), _rows_tokens(rows[gy1:], width)
        code = _VP8LCode([before, after, up, *(t for pair in glyph_rows for t in pair), *units.values()])
        head = _cat([(0x2F, 8), (width - 1, 14), (height - 1, 14), (0, 4), (1, 1), (3, 2), (14, 8), (0, 1)])
        return _WebpPlan(
            head=_cat([head, _fixed8_codes()]),
            mid=_cat([(0, 3), code.header, code.write(before)]),
            pre=tuple(code.write(pre) for pre, _ in glyph_rows),
            post=tuple(code.write(post) for _, post in glyph_rows),
            units=MappingProxyType({k: code.write(v) for k, v in units.items()}),
            up=code.write(up),
            after=code.write(after),
        )

    # -- edits ---------------------------------------------------------------------------------------

    def _edit(
        self,
        spec: RenderRequest,
        source: bytes,
        mask: bytes | None,
        keep_source_size: bool,
        digests: tuple[object, ...],
    ) -> bytes:
        prepared = self._edit_source(source, mask, (spec.width, spec.height), keep_source_size, digests)
        size = prepared.size
        spec = replace(spec, width=size[0], height=size[1])  # the label shows the real output size
        d = _digest("edit", spec.prompt, spec.seed)
        palette = _palette(d, spec.index)
        colour = tuple(palette[3 * (d[13] % _K) : 3 * (d[13] % _K) + 3])
        # diagonal stripes in the opposite colour: the edited area stays unmistakable even when the
        # seed's tint happens to be close to the source's own colours
        stripes = tuple(255 - c for c in colour)
        if prepared.indexed is not None and prepared.colours is not None:
            # the same arithmetic as blending the whole picture, on each of its colours once
            tinted = Image.blend(prepared.colours, Image.new("RGB", prepared.colours.size, colour), 0.45)
            colours = bytes(3 * _BOX) + palette[3 * _BOX :] + bytes(stripes) + tinted.tobytes()
            if spec.output_format == "png" and prepared.png is not None:
                return self._edit_png(spec, prepared.png, colours)
            indexed = prepared.indexed.copy()
            label = self._label(spec)
            if label is not None:
                indexed.paste(label[1], label[0][:2])  # label indices _BOX.._TEXT: their own palette slots
            indexed.putpalette(colours)
            return _save(indexed.convert("RGB"), spec.output_format)
        label = self._label(spec)
        edited = Image.blend(prepared.posterized, Image.new("RGB", size, colour), 0.45)
        edited = Image.composite(Image.new("RGB", size, stripes), edited, self._hatch(size))
        if prepared.mask is not None:
            edited = Image.composite(edited, prepared.src, prepared.mask)
        if label is not None:
            box, tile = label
            tile.putpalette(palette)
            edited.paste(tile.convert("RGB"), box[:2])
        return _save(edited, spec.output_format)

    def _edit_source(
        self,
        source: bytes,
        mask: bytes | None,
        size: tuple[int, int],
        keep_source_size: bool,
        digests: tuple[object, ...],
    ) -> _EditSource:
        """Everything of an edit that does not depend on the seed, cached by the inputs' digests.

        An unmasked opaque source whose posterised picture has at most 240 colours is also prepared as
        palette indices (hatching included): an edit is then that image, the label and a palette.
        """
        key = ("edit-source", *digests, None if keep_source_size else size)  # digests: source's, mask's
        prepared = cast("_EditSource | None", self._pieces.get(key))
        if prepared is not None:
            return prepared
        src_image = _open(source, "image")
        size = src_image.size if keep_source_size else size
        # Without a mask, OpenAI edits the source's transparent area; an opaque source is edited all over.
        edit_mask = _transparent_area(src_image) if mask is None else _edit_mask(_open(mask, "mask"))
        src = _flatten(src_image)
        if src.size != size:
            src = src.resize(size, Image.Resampling.BILINEAR)
        if edit_mask is not None and edit_mask.size != size:
            edit_mask = edit_mask.resize(size, Image.Resampling.BILINEAR)
        posterized = ImageOps.posterize(src, 3)
        indexed = colours = None
        found = posterized.getcolors(_EDIT_COLOURS) if edit_mask is None else None
        if found:
            colours = Image.new("RGB", (len(found), 1))
            colours.putdata([c for _, c in found])
            lookup = Image.new("P", (1, 1))
            # padded with a colour no posterised pixel has (its channels are multiples of 32)
            lookup.putpalette(colours.tobytes() + b"\x01\x02\x03" * (256 - len(found)))
            quantized = posterized.quantize(palette=lookup, dither=Image.Dither.NONE)
            high = quantized.getextrema()[1]
            if (
                isinstance(high, int)
                and high < len(found)
                and quantized.convert("RGB").tobytes() == posterized.tobytes()
            ):
                shifted = Image.frombytes("L", size, quantized.tobytes()).point(lambda v: v + _EDIT_FIRST)
                indexed = Image.composite(Image.new("L", size, _EDIT_STRIPES), shifted, self._hatch(size))
            else:  # pragma: no cover - an exact palette maps every colour to itself
                colours = None
        png = None
        if indexed is not None:  # the rows above and below the label, deflated once
            layout = self._layout(*size)
            y0, y1 = (size[1], size[1]) if layout is None else layout.box[1::2]
            raw = indexed.tobytes()
            rows = [raw[i : i + size[0]] for i in range(0, len(raw), size[0])]
            png = (
                _idat_piece(*self._deflate_rows(rows[:y0]), b64=False),
                _idat_piece(*self._deflate_rows(rows[y1:]), b64=False),
            )
        pixels = size[0] * size[1]
        prepared = _EditSource(size, src, posterized, edit_mask, indexed, colours, png)
        self._pieces.put_sized(key, prepared, pixels * (7 if indexed is None else 8) + 1024)
        return prepared

    def _edit_png(self, spec: RenderRequest, around: tuple[_Piece, _Piece], palette: bytes) -> bytes:
        """An indexed edit as a PNG spliced like a card's: cached rows around the label, the label's bands."""
        width, height = spec.width, spec.height
        before, after = around
        pieces = [before]
        adler = _adler32_combine(1, before.adler, before.length)
        layout = self._layout(width, height)
        if layout is not None:
            head, tail = self._label_pieces(spec.model, spec.prompt, layout)
            adler = _adler32_combine(adler, head.adler, head.length)
            base = tuple(self._info_base(spec.model, layout))
            info = self._info_fast(layout, base, spec, adler)
            if info is None:
                info = _deflate_runs(_info_runs(layout, list(base), _info_text(spec)), adler)
            deflated, adler = info
            adler = _adler32_combine(adler, tail.adler, tail.length)
            pieces += [head, _idat_piece(deflated, 0, 0, b64=False), tail]
        pieces.append(after)
        adler = _adler32_combine(adler, after.adler, after.length)
        ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
        return b"".join(
            (
                _PNG_SIGNATURE,
                ihdr,
                _png_chunk(b"PLTE", palette),
                _ZLIB_IDAT,
                *(p.chunk for p in pieces),
                _png_chunk(b"IDAT", _FINAL_BLOCK + struct.pack(">I", adler)),
                _IEND,
            )
        )

    def _hatch(self, size: tuple[int, int]) -> Image.Image:
        key = ("hatch", size)
        hatch = cast("Image.Image | None", self._pieces.get(key))
        if hatch is None:
            hatch = _hatch(size)
            self._pieces.put_sized(key, hatch, size[0] * size[1] + 256)
        return hatch


def _info_geometry(layout: _Layout, rows: int, chars: int) -> tuple[int, int, int, int]:
    """(scale, left x, top row, characters kept) of an info text of ``chars`` characters."""
    width = layout.box[2] - layout.box[0]
    inner = layout.pad + layout.border
    avail = (width - 2 * inner) // (2 if layout.kinds == ("all",) else 1)
    fit = max(1, min(layout.sizes[layout.info], avail // max(1, chars * _DOT_CELL)))
    kept = min(chars, avail // (_DOT_CELL * fit))
    text_w = kept * _DOT_CELL * fit
    left = inner if layout.kinds == ("all",) else max(inner, (width - text_w + fit) // 2)
    return fit, left, (rows - _DOT_ROWS * fit) // 2, kept


def _info_runs(layout: _Layout, base: list[bytes], text: str, *, uniform: bool = False) -> list[tuple[bytes, int]]:
    """The info line as (row, repeat) runs: ``text`` in the dot-matrix font over the ``base`` rows.

    ``uniform``: every base row is one object (the usual layout), so the line is 7 distinct rows, each
    repeated ``scale`` times, built from cached glyph bytes without touching the other rows.
    """
    fit, left, top, kept = _info_geometry(layout, len(base), len(text))
    text = text[:kept]
    text_w = kept * _DOT_CELL * fit
    bottom = top + _DOT_ROWS * fit
    if not text:
        return _runs(base)
    glyphs = _dot_rows(fit)
    if uniform:
        ref = base[0]
        before, after = ref[:left], ref[left + text_w :]
        runs = [(ref, top)] if top else []
        runs += [(b"".join((before, *map(glyphs[r].__getitem__, text), after)), fit) for r in range(_DOT_ROWS)]
        return [*runs, (ref, len(base) - bottom)] if len(base) > bottom else runs
    rows = list(base)
    for r in range(_DOT_ROWS):
        line = b"".join(map(glyphs[r].__getitem__, text))
        for i in range(top + r * fit, top + (r + 1) * fit):
            rows[i] = base[i][:left] + line + base[i][left + text_w :]
    return _runs(rows)


def _runs(rows: list[bytes]) -> list[tuple[bytes, int]]:
    runs: list[tuple[bytes, int]] = []
    for row in rows:
        if runs and runs[-1][0] == row:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((row, 1))
    return runs


def _expand(runs: list[tuple[bytes, int]]) -> list[bytes]:
    return [row for row, count in runs for _ in range(count)]


def _deflate_runs(runs: list[tuple[bytes, int]], adler: int = 1) -> tuple[bytes, int]:
    """(deflate, adler32 continued from ``adler``) of a few runs of rows in one zlib call: the per-seed rows.

    A repeated row is Up-filtered (a 2, then zeros), whose adler32 is updated in closed form.
    """
    if not runs:
        return b"", adler
    n = len(runs[0][0]) + 1
    up = b"\x02" + bytes(n - 1)
    parts: list[bytes] = []
    for row, count in runs:
        literal = b"\x00" + row
        parts.append(literal)
        adler = zlib.adler32(literal, adler)
        if count > 1:
            m = count - 1
            parts.append(up * m)
            a, b = adler & 0xFFFF, adler >> 16
            adler = (a + 2 * m) % _ADLER_BASE | (b + n * (m * a + m * (m + 1))) % _ADLER_BASE << 16
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 6, zlib.Z_RLE)
    return compressor.compress(b"".join(parts)) + compressor.flush(zlib.Z_SYNC_FLUSH), adler


def _card_image(width: int, height: int, rows: list[bytes], palette: bytes) -> Image.Image:
    image = Image.frombytes("L", (width, height), b"".join(rows))
    image.putpalette(palette)  # L -> P without touching the pixels
    return image


_HATCH_TILE = 24


@lru_cache(maxsize=1)
def _hatch_tile() -> Image.Image:
    tile = Image.new("L", (_HATCH_TILE, _HATCH_TILE), 0)
    draw = ImageDraw.Draw(tile)
    for offset in (-_HATCH_TILE, 0, _HATCH_TILE):  # wrap the stripe so tiles join seamlessly
        draw.line([(offset, _HATCH_TILE), (offset + _HATCH_TILE, 0)], fill=255, width=4)
    return tile


def _hatch(size: tuple[int, int]) -> Image.Image:
    """An L mask of diagonal stripes covering ``size`` (tiled: a few dozen pastes, not per-pixel work)."""
    width, height = size
    row = Image.new("L", (width, _HATCH_TILE), 0)
    for x in range(0, width, _HATCH_TILE):
        row.paste(_hatch_tile(), (x, 0))
    hatch = Image.new("L", size, 0)
    for y in range(0, height, _HATCH_TILE):
        hatch.paste(row, (0, y))
    return hatch


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for editing; transparent pixels show mid-grey rather than whatever colour they hide."""
    if not _has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    backdrop = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
    backdrop.alpha_composite(rgba)
    return backdrop.convert("RGB")


def _save(image: Image.Image, output_format: OutputFormat, *, card: bool = False) -> bytes:
    if output_format == "webp":
        options = _CARD_WEBP_OPTIONS if card else _WEBP_OPTIONS
    else:
        options = _PNG_OPTIONS if output_format == "png" else _JPEG_OPTIONS
    buffer = io.BytesIO()
    image.save(buffer, _PIL_FORMAT[output_format], **options)
    return buffer.getvalue()
