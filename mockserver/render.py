"""Real, deterministic, human-readable stand-in images for the mock (generations and edits).

Why it exists: clients of the mock must receive images they can actually decode, that are reproducible
for the same request (so tests can compare bytes), different for different seeds/indexes (so tests can
tell them apart) and that tell a human debugging a client what was asked for (model, size, seed, index
are printed on the picture).

Why it looks the way it does: contract suites request thousands of images, so rendering must be cheap.
The picture is a test card made of flat tiles and grid lines (a seed-dependent palette and pattern) with
a centred label box. Flat tiles mean most pixel rows repeat; the PNG path exploits that with a small
purpose-built encoder (repeated rows become PNG "Up"-filtered zero rows whose deflate output is cached
and spliced in), so a 1024x1024 PNG costs about a millisecond instead of the ~25 ms of a naive Pillow
gradient + save. JPEG/WebP and edits go through Pillow.

Thread-safety: one :class:`Renderer` may be shared by all threads of a pool. Its caches are guarded by
locks, FreeType text rendering is serialised (FreeType faces are not thread-safe), and the expensive
encoding runs outside any lock (Pillow's encoders and zlib release the GIL). Two threads missing the
cache for the same request both render it; the results are byte-identical, so that race is harmless.
"""

from __future__ import annotations

import base64
import colorsys
import hashlib
import io
import math
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Final, Literal, get_args

from PIL import Image, ImageDraw, ImageFont, ImageOps, features

__all__ = [
    "MAX_DIMENSION",
    "MEDIA_TYPES",
    "OUTPUT_FORMATS",
    "CacheInfo",
    "ImageInfo",
    "InvalidImage",
    "OutputFormat",
    "RenderSpec",
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
class RenderSpec:
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
class CacheInfo:
    """Encoded-bytes cache statistics, for tests and debugging endpoints."""

    entries: int
    size_bytes: int
    limit_bytes: int
    hits: int
    misses: int


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the label goes; a pure function of the image size so tests can locate it."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    kinds: tuple[str, ...]
    sizes: tuple[int, ...]
    tops: tuple[int, ...]
    pad: int
    border: int


@dataclass(frozen=True, slots=True)
class _Card:
    """A rendered test card: palette plus one bytes object per row (repeated rows share objects)."""

    width: int
    height: int
    palette: bytes
    rows: list[bytes]


class _BytesLRU:
    """LRU bounded by total value size; the lock makes it safe to share across a thread pool."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self._limit:
            return  # would evict everything else and still not fit
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self._limit:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0
            self._hits = 0
            self._misses = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(len(self._items), self._size, self._limit, self._hits, self._misses)


def _digest(*parts: object) -> bytes:
    """Stable across processes (unlike hash()), and length-prefixed so parts cannot run together."""
    h = hashlib.sha256()
    for part in parts:
        raw = str(part).encode("utf-8", "surrogatepass")
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.digest()


def _rgb(hue: float, light: float, sat: float) -> bytes:
    return bytes(round(c * 255) for c in colorsys.hls_to_rgb(hue % 1.0, light, sat))


def _palette(d: bytes, index: int = 0) -> bytes:
    """A harmonious seed-dependent scheme, so cards look deliberate rather than random noise.

    The i-th image of a request turns the hue by i golden-ratio steps, so siblings never look alike.
    """
    hue = int.from_bytes(d[0:2], "big") / 65536 + index * 0.381966
    scheme = d[2] % 4
    sat = 0.5 + d[3] / 255 * 0.4
    out = bytearray()
    for i in range(_K):
        if scheme == 0:  # analogous
            h = hue + (i - 3.5) * 0.04
        elif scheme == 1:  # complementary
            h = hue + 0.5 * (i % 2)
        elif scheme == 2:  # triadic
            h = hue + (i % 3) / 3
        else:  # spectrum
            h = hue + i / _K
        light = (0.3, 0.45, 0.6, 0.75)[(i + d[11]) % 4]
        out += _rgb(h, light, sat)
    out += _rgb(hue, 0.92, 0.2) if d[12] % 2 else _rgb(hue, 0.12, 0.35)  # grid lines
    box = _rgb(hue + 0.5, 0.1, 0.3)
    ink = b"\xfa\xfa\xfa"
    for level in range(_RAMP + 1):
        out += bytes(b + (i - b) * level // _RAMP for b, i in zip(box, ink, strict=True))
    return bytes(out)


def _cell(kind: int, cx: int, cy: int, cols: int, rows: int, d: bytes) -> int:
    """Palette index of one tile; six seed-selected motifs keep different seeds visibly different."""
    a = 1 + d[5] % 3
    b = 2 + d[7] % 3
    ccx = cols // 2 + d[9] % 3 - 1
    ccy = rows // 2 + d[10] % 3 - 1
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
    return (v + d[8]) % _K


def _edges(total: int, parts: int) -> list[int]:
    return [i * total // parts for i in range(parts + 1)]


def _background(width: int, height: int, d: bytes, index: int = 0) -> list[bytes]:
    """Tiles + grid lines as rows of palette indices; all rows of a tile band are one shared object.

    Consecutive indexes get different motifs, so the images of one request differ at a glance.
    """
    tile = max(4.0, math.sqrt(width * height) / (10 + d[6] % 7))
    cols = min(64, max(1, round(width / tile)))
    nrows = min(64, max(1, round(height / tile)))
    xe, ye = _edges(width, cols), _edges(height, nrows)
    line = max(1, round(min(width / cols, height / nrows) / 24))
    lines = min(width // cols, height // nrows) >= 4 * line
    kind = (d[4] + index) % 6
    line_row = bytes((_LINE,)) * width
    rows: list[bytes] = []
    for cy in range(nrows):
        row = bytearray(width)
        for cx in range(cols):
            row[xe[cx] : xe[cx + 1]] = bytes((_cell(kind, cx, cy, cols, nrows, d),)) * (xe[cx + 1] - xe[cx])
        if lines:
            for x in xe[1:-1]:
                row[x - line // 2 : x - line // 2 + line] = line_row[:line]
        rows.extend([bytes(row)] * (ye[cy + 1] - ye[cy]))
    if lines:
        for y in ye[1:-1]:
            rows[y - line // 2 : y - line // 2 + line] = [line_row] * line
    return rows


def _clean(text: str) -> str:
    """The built-in font only has ASCII glyphs; anything else would render as tofu boxes."""
    return " ".join("".join(c if " " <= c <= "~" else "?" for c in text[:_MAX_LABEL_CHARS]).split())


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


class Renderer:
    """Renders cards and edits, holding the caches; create one per app instance and share it.

    Safe to call from many threads at once (see the module docstring).
    """

    def __init__(self, cache_bytes: int = 256 * 1024 * 1024) -> None:
        if cache_bytes < 0:
            raise ValueError("cache_bytes must be >= 0")
        self._cache = _BytesLRU(cache_bytes)
        self._text_lock = threading.Lock()  # fonts, line images, layouts (FreeType is not thread-safe)
        self._fonts: dict[int, ImageFont.FreeTypeFont] = {}
        self._lines: OrderedDict[tuple[str, int, int], Image.Image | None] = OrderedDict()
        self._layouts: dict[tuple[int, int], _Layout | None] = {}
        self._runs_lock = threading.Lock()
        self._runs: dict[tuple[int, int], tuple[bytes, int, int]] = {}
        self._has_freetype = bool(features.check_module("freetype2"))

    # -- public API ----------------------------------------------------------------------------------

    def render(self, spec: RenderSpec) -> bytes:
        """A test card for a generation request; repeated identical requests are served from cache."""
        cached = self._cache.get(spec)
        if cached is not None:
            return cached
        card = self._card(spec)
        if spec.output_format == "png":
            data = self._encode_png(card, _comment(spec))
        else:
            data = _save(self._card_image(card).convert("RGB"), spec.output_format, card=True)
        self._cache.put(spec, data)
        return data

    def render_b64_json(self, spec: RenderSpec) -> bytes:
        """``render`` as a JSON string token (``"<base64>"``), cached: responses embed it as is, so a
        repeated request copies the image once instead of encoding, decoding and escaping it."""
        key = ("b64-json", spec)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = b'"' + base64.b64encode(self.render(spec)) + b'"'
        self._cache.put(key, data)
        return data

    def render_edit(
        self,
        spec: RenderSpec,
        source: bytes,
        mask: bytes | None = None,
        *,
        keep_source_size: bool = True,
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
        data = self._edit(spec, source, mask, keep_source_size)
        self._cache.put(key, data)
        return data

    def clear(self) -> None:
        """Drop every cache (encoded images, text, layouts), e.g. between test runs."""
        self._cache.clear()
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

    def _card(self, spec: RenderSpec) -> _Card:
        d = _digest("card", spec.prompt, spec.seed)
        rows = _background(spec.width, spec.height, d, spec.index)
        label = self._label(spec)
        if label is not None:
            (x0, y0, x1, _), tile = label
            width = x1 - x0
            pixels = tile.tobytes()
            for r in range(tile.height):
                bg = rows[y0 + r]
                rows[y0 + r] = bg[:x0] + pixels[r * width : (r + 1) * width] + bg[x1:]
        return _Card(spec.width, spec.height, _palette(d, spec.index), rows)

    @staticmethod
    def _card_image(card: _Card) -> Image.Image:
        image = Image.frombytes("L", (card.width, card.height), b"".join(card.rows))
        image.putpalette(card.palette)  # L -> P without touching the pixels
        return image

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
        with self._text_lock:
            key = (width, height)
            if key not in self._layouts:
                if len(self._layouts) >= _SMALL_CACHE_ENTRIES:
                    self._layouts.clear()
                self._layouts[key] = self._compute_layout(width, height)
            return self._layouts[key]

    def _compute_layout(self, width: int, height: int) -> _Layout | None:
        """Pick the richest label that stays readable, shrinking the font until it fits."""
        options = []
        for kinds, wdiv, hdiv in _LAYOUTS:
            px = min(int(min(width / wdiv, height / hdiv)), _MAX_FONT_PX)
            if px >= _MIN_FONT_PX:
                options.append((kinds, px))
        if not options:
            return None
        best = max(px for _, px in options)
        kinds, px = next(o for o in options if o[1] >= 0.6 * best)
        margin = round(width * 0.08)
        box_w = width - 2 * margin
        while px >= _MIN_FONT_PX:
            sizes = tuple(max(_MIN_FONT_PX, round(px * 0.6)) if k == "prompt" else px for k in kinds)
            pad, border, gap = max(2, px // 3), max(1, px // 14), max(1, px // 6)
            tops, y = [], pad + border
            for size in sizes:
                tops.append(y)
                ascent, descent = self._font(size).getmetrics()
                y += ascent + descent + gap
            box_h = y - gap + pad + border
            if box_h <= height - 2 and box_w >= 4 * px:
                x0, y0 = margin, (height - box_h) // 2
                return _Layout((x0, y0, x0 + box_w, y0 + box_h), kinds, sizes, tuple(tops), pad, border)
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
        if text:
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

    def _label(self, spec: RenderSpec) -> tuple[tuple[int, int, int, int], Image.Image] | None:
        """The label box as an L image of palette indices, and where it goes."""
        layout = self._layout(spec.width, spec.height)
        if layout is None:
            return None
        x0, y0, x1, y1 = layout.box
        info = f"{spec.width}x{spec.height}  seed {spec.seed}  #{spec.index}"
        texts = {
            "model": _clean(spec.model),
            "info": info,
            "prompt": '"' + _clean(spec.prompt) + '"',
            "all": f"{info}  {_clean(spec.model)}",
        }
        tile = Image.new("L", (x1 - x0, y1 - y0), _BOX)
        ImageDraw.Draw(tile).rectangle((0, 0, tile.width - 1, tile.height - 1), outline=_TEXT, width=layout.border)
        avail = tile.width - 2 * (layout.pad + layout.border)
        with self._text_lock:
            for kind, size, top in zip(layout.kinds, layout.sizes, layout.tops, strict=True):
                line = self._line(texts[kind], size, avail)
                if line is not None:
                    tile.paste(line, ((tile.width - line.width) // 2, top))
        return layout.box, tile

    # -- PNG -----------------------------------------------------------------------------------------

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

    def _encode_png(self, card: _Card, comment: bytes) -> bytes:
        """8-bit palette PNG; runs of repeated rows are spliced in from cached deflate pieces."""
        rows, width = card.rows, card.width
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        parts: list[bytes] = [_ZLIB_HEADER]
        adler = 1
        literal: list[bytes] = []
        zero_row = b"\x02" + bytes(width)

        def flush_literal() -> None:
            nonlocal adler
            if literal:
                data = b"".join(literal)
                adler = zlib.adler32(data, adler)
                parts.append(compressor.compress(data))
                literal.clear()

        y, height = 0, card.height
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
            y += run
        flush_literal()
        parts.append(compressor.flush())
        parts.append(struct.pack(">I", adler))
        header = struct.pack(">IIBBBBB", card.width, card.height, 8, 3, 0, 0, 0)
        return b"".join(
            (
                _PNG_SIGNATURE,
                _png_chunk(b"IHDR", header),
                _png_chunk(b"PLTE", card.palette),
                _png_chunk(b"tEXt", b"Comment\x00" + comment),
                _png_chunk(b"IDAT", b"".join(parts)),
                _png_chunk(b"IEND", b""),
            )
        )

    # -- edits ---------------------------------------------------------------------------------------

    def _edit(self, spec: RenderSpec, source: bytes, mask: bytes | None, keep_source_size: bool) -> bytes:
        src_image = _open(source, "image")
        size = src_image.size if keep_source_size else (spec.width, spec.height)
        spec = replace(spec, width=size[0], height=size[1])  # the label shows the real output size
        # Without a mask, OpenAI edits the source's transparent area; an opaque source is edited all over.
        edit_mask = _transparent_area(src_image) if mask is None else _edit_mask(_open(mask, "mask"))
        src = _flatten(src_image)
        if src.size != size:
            src = src.resize(size, Image.Resampling.BILINEAR)
        d = _digest("edit", spec.prompt, spec.seed)
        palette = _palette(d, spec.index)
        colour = tuple(palette[3 * (d[13] % _K) : 3 * (d[13] % _K) + 3])
        tint = Image.new("RGB", size, colour)
        edited = Image.blend(ImageOps.posterize(src, 3), tint, 0.45)
        # diagonal stripes in the opposite colour: the edited area stays unmistakable even when the
        # seed's tint happens to be close to the source's own colours
        stripes = Image.new("RGB", size, tuple(255 - c for c in colour))
        edited = Image.composite(stripes, edited, _hatch(size))
        if edit_mask is not None:
            if edit_mask.size != size:
                edit_mask = edit_mask.resize(size, Image.Resampling.BILINEAR)
            edited = Image.composite(edited, src, edit_mask)
        label = self._label(spec)
        if label is not None:
            box, tile = label
            tile.putpalette(palette)
            edited.paste(tile.convert("RGB"), box[:2])
        return _save(edited, spec.output_format)


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


def _comment(spec: RenderSpec) -> bytes:
    """A PNG tEXt note so tools like exiftool/identify show what the mock was asked for."""
    prompt = _clean(spec.prompt)
    text = (
        f"nanogpt-image-mock model={_clean(spec.model)} size={spec.width}x{spec.height} "
        f"seed={spec.seed} index={spec.index} prompt={prompt}"
    )
    return text.encode("latin-1")
