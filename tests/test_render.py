"""The renderer's promises: real images of the exact size, deterministic, distinct, labelled, cached."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat

from mockserver.render import (
    MEDIA_TYPES,
    OUTPUT_FORMATS,
    InvalidImage,
    OutputFormat,
    Renderer,
    RenderRequest,
    _adler32_combine,
    image_info,
)

ROOT = Path(__file__).resolve().parents[1]
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MODEL = "black-forest-labs/flux-1.1-pro-ultra"


def spec(**overrides: object) -> RenderRequest:
    fields: dict[str, object] = {
        "model": MODEL,
        "prompt": "a lighthouse at dusk",
        "width": 256,
        "height": 192,
        "seed": 7,
        "index": 0,
        "output_format": "png",
    }
    fields.update(overrides)
    return RenderRequest(**fields)  # type: ignore[arg-type]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb(data: bytes) -> Image.Image:
    return decode(data).convert("RGB")


def mean_abs_diff(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    if box is not None:
        diff = diff.crop(box)
    return sum(ImageStat.Stat(diff).mean) / 3


def outside_label(renderer: Renderer, width: int, height: int) -> Image.Image:
    """An L mask: 255 everywhere except the label box, to compare pictures ignoring the text."""
    mask = Image.new("L", (width, height), 255)
    box = renderer.label_box(width, height)
    if box is not None:
        ImageDraw.Draw(mask).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=0)
    return mask


def masked_mean_diff(a: Image.Image, b: Image.Image, mask: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff, mask).mean) / 3


def photo(width: int, height: int) -> Image.Image:
    """A photo-like source with structure in every region (so edits have something to be derived from)."""
    gradient = Image.linear_gradient("L")
    red = gradient.resize((width, height))
    green = gradient.rotate(90).resize((width, height))
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    for i in range(0, width, max(1, width // 8)):
        draw.ellipse(
            (i, i * height // max(1, width), i + width // 10, i * height // max(1, width) + height // 10),
            fill=(255 - i % 256, i % 256, 128),
        )
    return image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def correlation(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of 32x32 luminance thumbnails (pure Python: numpy is not a dependency)."""
    xs = list(a.convert("L").resize((32, 32), Image.Resampling.BOX).tobytes())
    ys = list(b.convert("L").resize((32, 32), Image.Resampling.BOX).tobytes())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return float(cov / (vx * vy) ** 0.5)


# -- generation: format, size, determinism ---------------------------------------------------------


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize(
    ("width", "height"),
    [(1, 1), (8, 8), (13, 7), (64, 2048), (2048, 64), (1024, 1024), (1536, 640)],
)
def test_render_is_a_real_image_of_the_exact_size(fmt: OutputFormat, width: int, height: int) -> None:
    data = Renderer().render(spec(width=width, height=height, output_format=fmt))
    image = decode(data)
    assert image.format == PIL_FORMATS[fmt]
    assert image.size == (width, height)
    assert image_info(data).format == fmt
    assert (image_info(data).width, image_info(data).height) == (width, height)


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_render_4096_square(fmt: OutputFormat) -> None:
    image = decode(Renderer(cache_bytes=0).render(spec(width=4096, height=4096, output_format=fmt)))
    assert image.size == (4096, 4096)
    assert image.format == PIL_FORMATS[fmt]


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(8, 2048),
    height=st.integers(8, 2048),
    fmt=st.sampled_from(OUTPUT_FORMATS),
    seed=st.integers(0, 2**32 - 1),
    index=st.integers(0, 9),
)
def test_any_size_format_seed_index(width: int, height: int, fmt: OutputFormat, seed: int, index: int) -> None:
    renderer = Renderer(cache_bytes=0)
    s = spec(width=width, height=height, output_format=fmt, seed=seed, index=index)
    data = renderer.render(s)
    image = decode(data)
    assert image.format == PIL_FORMATS[fmt]
    assert image.size == (width, height)
    assert renderer.render(s) == data


@settings(max_examples=25, deadline=None)
@given(width=st.integers(1, 700), height=st.integers(1, 700), seed=st.integers(0, 2**32 - 1))
def test_png_encoder_agrees_with_libwebp_lossless(width: int, height: int, seed: int) -> None:
    """The hand-written PNG encoder must decode to exactly the pixels Pillow's own (lossless WebP) path has."""
    renderer = Renderer(cache_bytes=0)
    png = rgb(renderer.render(spec(width=width, height=height, seed=seed)))
    webp = rgb(renderer.render(spec(width=width, height=height, seed=seed, output_format="webp")))
    assert png.tobytes() == webp.tobytes()


def test_png_is_well_formed() -> None:
    """Every chunk CRC and the zlib stream (incl. its adler32) must check out, not just Pillow's tolerance."""
    data = Renderer().render(spec(width=1024, height=1024))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, idat, tags = 8, b"", []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(tag + body) == crc, tag
        tags.append(tag)
        idat += body if tag == b"IDAT" else b""
        pos += 12 + length
    assert tags[0] == b"IHDR" and tags[-1] == b"IEND"
    raw = zlib.decompress(idat)  # verifies the adler32 trailer
    assert len(raw) == 1024 * (1024 + 1)


def test_identical_specs_give_identical_bytes_across_instances() -> None:
    for fmt in OUTPUT_FORMATS:
        s = spec(width=640, height=480, output_format=fmt)
        assert Renderer().render(s) == Renderer(cache_bytes=0).render(s)


def test_identical_specs_give_identical_bytes_across_processes() -> None:
    code = (
        "import hashlib\n"
        "from mockserver.render import Renderer, RenderRequest\n"
        "r = Renderer()\n"
        "for f in ('png', 'jpeg', 'webp'):\n"
        f"    print(hashlib.sha256(r.render(RenderRequest({MODEL!r}, 'p', 300, 200, 5, 1, f))).hexdigest())\n"
    )
    digests = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        digests.append(out.stdout.split())
    renderer = Renderer()
    here = [
        hashlib.sha256(renderer.render(RenderRequest(MODEL, "p", 300, 200, 5, 1, f))).hexdigest()
        for f in OUTPUT_FORMATS
    ]
    assert digests[0] == digests[1] == here


# -- distinctness and the label -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"seed": 8}, {"index": 1}, {"prompt": "a lighthouse at dawn"}, {"model": "flux-dev"}],
)
@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_any_field_change_changes_the_bytes(change: dict[str, object], fmt: OutputFormat) -> None:
    renderer = Renderer()
    assert renderer.render(spec(output_format=fmt)) != renderer.render(spec(output_format=fmt, **change))


def test_sibling_images_are_visibly_different() -> None:
    """The i-th images of one request differ outside the label too, and clearly (not by a shade)."""
    renderer = Renderer()
    outside = outside_label(renderer, 512, 512)
    images = [rgb(renderer.render(spec(width=512, height=512, index=i))) for i in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert masked_mean_diff(images[i], images[j], outside) > 20, (i, j)


@pytest.mark.parametrize("seed", [0, 1, 2, 12345, 2**32 - 1])
def test_different_seeds_are_visibly_different(seed: int) -> None:
    renderer = Renderer()
    outside = outside_label(renderer, 512, 512)
    a = rgb(renderer.render(spec(width=512, height=512, seed=seed)))
    b = rgb(renderer.render(spec(width=512, height=512, seed=seed + 1)))
    assert masked_mean_diff(a, b, outside) > 20


@pytest.mark.parametrize(("width", "height"), [(1024, 1024), (512, 300), (2048, 64), (300, 900)])
def test_model_id_only_changes_the_label(width: int, height: int) -> None:
    renderer = Renderer()
    box = renderer.label_box(width, height)
    assert box is not None
    a = rgb(renderer.render(spec(width=width, height=height, model="flux-dev")))
    b = rgb(renderer.render(spec(width=width, height=height, model="stable-diffusion-xl")))
    changed = ImageChops.difference(a, b).getbbox()
    assert changed is not None  # the model id is printed
    x0, y0, x1, y1 = changed
    assert box[0] <= x0 and box[1] <= y0 and x1 <= box[2] and y1 <= box[3]


def test_label_is_big_and_readable_at_1024() -> None:
    """A big dark box with light text: text-coloured pixels make up a real fraction of it."""
    renderer = Renderer()
    box = renderer.label_box(1024, 1024)
    assert box is not None
    assert box[2] - box[0] >= 600 and box[3] - box[1] >= 120
    label = rgb(renderer.render(spec(width=1024, height=1024))).crop(box).convert("L")
    light = sum(label.histogram()[200:])
    dark = sum(label.histogram()[:60])
    assert dark > 0.5 * label.width * label.height
    assert light > 0.01 * label.width * label.height


def test_label_scales_with_image_size() -> None:
    renderer = Renderer()
    small, big = renderer.label_box(512, 512), renderer.label_box(2048, 2048)
    assert small is not None and big is not None
    assert big[3] - big[1] > 3 * (small[3] - small[1])


@pytest.mark.parametrize(("width", "height"), [(1, 1), (8, 8), (16, 200), (64, 64)])
def test_tiny_images_skip_the_label_without_crashing(width: int, height: int) -> None:
    renderer = Renderer()
    assert renderer.label_box(width, height) is None
    assert decode(renderer.render(spec(width=width, height=height))).size == (width, height)


def test_odd_model_and_prompt_text_is_rendered_safely() -> None:
    renderer = Renderer()
    weird = spec(model="模型/\u2603\nname\x00" + "x" * 300, prompt="\ud800 lone surrogate\n" * 50)
    assert decode(renderer.render(weird)).size == (256, 192)
    huge_prompt = spec(width=1024, height=1024, prompt="word " * 200_000)
    assert decode(renderer.render(huge_prompt)).size == (1024, 1024)


# -- cache -----------------------------------------------------------------------------------------


def test_cache_returns_identical_bytes_and_counts_hits() -> None:
    renderer = Renderer()
    first = renderer.render(spec())
    assert renderer.render(spec()) is first
    info = renderer.cache_info()
    assert (info.entries, info.hits, info.misses) == (1, 1, 1)
    renderer.clear()
    assert renderer.cache_info().entries == 0
    assert renderer.render(spec()) == first


def test_cache_is_bounded_by_bytes() -> None:
    limit = 60_000
    renderer = Renderer(cache_bytes=limit)
    total = 0
    for seed in range(40):
        total += len(renderer.render(spec(seed=seed, output_format="jpeg")))
        info = renderer.cache_info()
        assert info.size_bytes <= limit
    assert total > 2 * limit  # the bound was actually exercised
    assert 0 < renderer.cache_info().entries < 40
    huge = renderer.render(spec(width=2048, height=2048, output_format="jpeg"))
    assert len(huge) > limit and renderer.cache_info().size_bytes <= limit


def test_zero_cache_stores_nothing() -> None:
    renderer = Renderer(cache_bytes=0)
    assert renderer.render(spec()) == renderer.render(spec())
    assert renderer.cache_info().entries == 0


def test_concurrent_renders_match_serial_ones() -> None:
    specs = [spec(seed=s % 5, index=s % 3, output_format=OUTPUT_FORMATS[s % 3]) for s in range(30)]
    expected = [Renderer(cache_bytes=0).render(s) for s in specs]
    shared = Renderer(cache_bytes=200_000)
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(shared.render, specs)) == expected


# -- edits -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
@pytest.mark.parametrize("source_format", ["PNG", "JPEG", "WEBP", "GIF"])
def test_edit_keeps_source_size_and_is_derived_from_it(fmt: OutputFormat, source_format: str) -> None:
    renderer = Renderer()
    source = photo(320, 240)
    data = renderer.render_edit(spec(output_format=fmt), encode(source, source_format))
    out = decode(data)
    assert out.format == PIL_FORMATS[fmt]
    assert out.size == (320, 240)
    box = renderer.label_box(320, 240)
    assert box is not None
    for region in ((0, 0, 320, box[1]), (0, box[3], 320, 240)):  # above and below the label
        assert correlation(source.crop(region), out.crop(region)) > 0.6
    assert mean_abs_diff(source, out) > 10  # but it is an edit, not a copy


def test_edit_resizes_when_asked() -> None:
    renderer = Renderer()
    data = renderer.render_edit(spec(width=200, height=100), encode(photo(320, 240)), keep_source_size=False)
    assert decode(data).size == (200, 100)
    assert decode(renderer.render_edit(spec(width=200, height=100), encode(photo(320, 240)))).size == (320, 240)


def test_edit_is_deterministic_and_seed_dependent() -> None:
    source = encode(photo(256, 256))
    a = Renderer().render_edit(spec(), source)
    assert Renderer(cache_bytes=0).render_edit(spec(), source) == a
    assert Renderer().render_edit(spec(seed=8), source) != a
    assert Renderer().render_edit(spec(index=1), source) != a


def half_mask(width: int, height: int, mode: str) -> Image.Image:
    """Left half marked for editing: white on black (L), or transparent on opaque (RGBA)."""
    if mode == "L":
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).rectangle((0, 0, width // 2 - 1, height - 1), fill=255)
        return mask
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((0, 0, width // 2 - 1, height - 1), fill=(0, 0, 0, 0))
    return mask


@pytest.mark.parametrize("mask_mode", ["L", "RGBA"])
@pytest.mark.parametrize("mask_size", [(400, 300), (40, 30)])
def test_masked_region_is_edited_and_the_rest_is_kept(mask_mode: str, mask_size: tuple[int, int]) -> None:
    renderer = Renderer()
    source = photo(400, 300)
    mask = encode(half_mask(*mask_size, mask_mode))
    out = rgb(renderer.render_edit(spec(), encode(source), mask))
    assert out.size == source.size
    keep = outside_label(renderer, 400, 300)
    left, right = Image.new("L", (400, 300), 0), Image.new("L", (400, 300), 0)
    left.paste(keep.crop((0, 0, 190, 300)), (0, 0))  # stay clear of the (resized, blurred) mask edge
    right.paste(keep.crop((210, 0, 400, 300)), (210, 0))
    assert masked_mean_diff(source, out, left) > 15
    assert masked_mean_diff(source, out, right) < 1


def test_unmasked_edit_of_a_transparent_source_edits_the_transparent_area() -> None:
    renderer = Renderer()
    source = photo(300, 200).convert("RGBA")
    source.putalpha(half_mask(300, 200, "RGBA").getchannel("A"))
    out = rgb(renderer.render_edit(spec(), encode(source)))
    keep = outside_label(renderer, 300, 200)
    right = Image.new("L", (300, 200), 0)
    right.paste(keep.crop((160, 0, 300, 200)), (160, 0))
    assert masked_mean_diff(source.convert("RGB"), out, right) < 1


def test_mask_with_opaque_alpha_uses_luminance() -> None:
    renderer = Renderer()
    source = photo(200, 200)
    mask = half_mask(200, 200, "L").convert("RGBA")  # white = edit, alpha all 255
    out = rgb(renderer.render_edit(spec(), encode(source), encode(mask)))
    keep = outside_label(renderer, 200, 200)
    left, right = Image.new("L", (200, 200), 0), Image.new("L", (200, 200), 0)
    left.paste(keep.crop((0, 0, 90, 200)), (0, 0))
    right.paste(keep.crop((110, 0, 200, 200)), (110, 0))
    assert masked_mean_diff(source, out, left) > 15
    assert masked_mean_diff(source, out, right) < 1


# -- invalid input and image_info ------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a", b"<svg/>"],
)
def test_garbage_is_invalid_image(garbage: bytes) -> None:
    with pytest.raises(InvalidImage):
        image_info(garbage)
    with pytest.raises(InvalidImage):
        Renderer().render_edit(spec(), garbage)
    with pytest.raises(InvalidImage):
        Renderer().render_edit(spec(), encode(photo(64, 64)), garbage)


def test_truncated_image_is_invalid() -> None:
    data = encode(photo(300, 300))
    with pytest.raises(InvalidImage):
        Renderer().render_edit(spec(), data[: len(data) // 2])


def test_unsupported_format_is_invalid() -> None:
    with pytest.raises(InvalidImage):
        image_info(encode(photo(32, 32), "BMP"))


def test_invalid_image_is_a_value_error() -> None:
    assert issubclass(InvalidImage, ValueError)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_image_info_reads_the_header(fmt: str) -> None:
    info = image_info(encode(photo(123, 45), fmt))
    assert (info.format, info.width, info.height) == (fmt.lower(), 123, 45)


def test_media_types() -> None:
    assert dict(MEDIA_TYPES) == {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
    assert set(MEDIA_TYPES) == set(OUTPUT_FORMATS)


@pytest.mark.parametrize(
    "bad",
    [{"width": 0}, {"height": 9000}, {"width": 1.5}, {"index": -1}, {"output_format": "gif"}, {"seed": "1"}],
)
def test_spec_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        spec(**bad)


@given(a=st.binary(max_size=300), b=st.binary(max_size=300), repeat=st.integers(1, 70_000))
def test_adler32_combine_matches_zlib(a: bytes, b: bytes, repeat: int) -> None:
    b *= repeat  # long enough for both sums to wrap the modulus
    assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


# -- unseeded requests: the spliced PNG path and cache=False ---------------------------------------


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(tag, body) of every PNG chunk, checking each CRC on the way."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, out = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(tag + body) == int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big"), tag
        out.append((tag, body))
        pos += 12 + length
    return out


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 2048),
    height=st.integers(1, 2048),
    seed=st.one_of(st.integers(0, 2**32 - 1), st.integers(-(2**70), 2**70)),
    index=st.integers(0, 120),
    fmt=st.sampled_from(OUTPUT_FORMATS),
)
def test_b64_token_is_the_rendered_image(width: int, height: int, seed: int, index: int, fmt: OutputFormat) -> None:
    """The spliced base64 is exactly ``render``'s bytes, with or without warm pieces, cached or not."""
    s = spec(width=width, height=height, seed=seed, index=index, output_format=fmt)
    warm = Renderer()
    warm.render(spec(width=width, height=height, seed=seed + 1, index=index, output_format=fmt))
    data = Renderer(cache_bytes=0, pieces_bytes=0).render(s)
    token = warm.render_b64_json(s, cache=False)
    assert token == b'"' + base64.b64encode(data) + b'"'
    assert warm.render(s, cache=False) == data
    image = decode(data)
    assert image.format == PIL_FORMATS[fmt]
    assert image.size == (width, height)


@settings(max_examples=40, deadline=None)
@given(width=st.integers(1, 1500), height=st.integers(1, 1500), seed=st.integers(0, 2**32 - 1))
def test_spliced_png_is_well_formed(width: int, height: int, seed: int) -> None:
    """Every chunk CRC, the IDAT order, the zlib stream and its adler32 check out for any size."""
    data = Renderer().render(spec(width=width, height=height, seed=seed))
    tags = [tag for tag, _ in chunks(data)]
    assert tags[:3] == [b"IHDR", b"PLTE", b"tEXt"] and tags[-1] == b"IEND"
    first = tags.index(b"IDAT")
    assert set(tags[first:-1]) == {b"IDAT"}  # consecutive, as the PNG spec requires
    raw = zlib.decompress(b"".join(body for tag, body in chunks(data) if tag == b"IDAT"))  # checks adler32
    assert len(raw) == height * (width + 1)


def test_unseeded_renders_are_not_kept() -> None:
    renderer = Renderer()
    for seed in range(5):
        for fmt in OUTPUT_FORMATS:
            s = spec(seed=seed, output_format=fmt)
            assert renderer.render_b64_json(s, cache=False) == renderer.render_b64_json(s, cache=False)
            renderer.render(s, cache=False)
    renderer.render_edit(spec(), encode(photo(64, 64)), cache=False)
    assert renderer.cache_info().entries == 0
    assert renderer.cache_info().size_bytes == 0


def test_a_repeated_seed_gives_the_same_bytes_whichever_path_rendered_it_first() -> None:
    s = spec(width=1024, height=1024, seed=987654321, index=2)
    cold = Renderer(cache_bytes=0, pieces_bytes=0).render(s)
    warm = Renderer()
    for seed in range(30):  # warms every background of the size
        warm.render_b64_json(spec(width=1024, height=1024, seed=seed, index=2), cache=False)
    assert base64.b64decode(warm.render_b64_json(s, cache=False)[1:-1]) == cold
    assert warm.render(s) == cold


def test_many_seeds_of_one_size_are_all_different_pictures() -> None:
    """Seeds share background pixel data by design; the palette and printed seed still tell them apart."""
    renderer = Renderer()
    pictures = {
        rgb(renderer.render(spec(width=512, height=512, seed=seed), cache=False)).tobytes() for seed in range(60)
    }
    assert len(pictures) == 60


def test_the_seed_is_printed_in_the_label() -> None:
    """Palette indices inside the label differ between two seeds: the digits are drawn, not just tinted."""
    renderer = Renderer()
    box = renderer.label_box(1024, 1024)
    assert box is not None
    a = decode(renderer.render(spec(width=1024, height=1024, seed=1111111111)))
    b = decode(renderer.render(spec(width=1024, height=1024, seed=2222222222)))
    assert a.mode == b.mode == "P"
    assert a.crop(box).tobytes() != b.crop(box).tobytes()
    light = sum(1 for v in a.convert("L").crop(box).tobytes() if v > 200)
    assert light > 0.01 * (box[2] - box[0]) * (box[3] - box[1])


def test_png_comment_names_the_request() -> None:
    image = decode(Renderer().render(spec(width=640, height=480, seed=31337, index=3)))
    comment = str(image.info["Comment"]).rstrip()
    assert comment == (f"nanogpt-image-mock model={MODEL} size=640x480 seed=31337 index=3 prompt=a lighthouse at dusk")


def test_without_a_pieces_cache_nothing_changes() -> None:
    for fmt in OUTPUT_FORMATS:
        s = spec(width=300, height=200, seed=5, output_format=fmt)
        assert Renderer(pieces_bytes=0).render(s) == Renderer().render(s)


# -- JPEG, WebP and edits: spliced per request, the same pictures -------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    width=st.integers(1, 1200),
    height=st.integers(1, 1200),
    seed=st.one_of(st.integers(0, 2**32 - 1), st.integers(-(2**40), 2**40)),
    index=st.integers(0, 12),
)
def test_jpeg_and_webp_show_the_png_picture(width: int, height: int, seed: int, index: int) -> None:
    """WebP is lossless: exactly the PNG's pixels; the JPEG is the same picture up to compression."""
    renderer = Renderer(cache_bytes=0)
    s = spec(width=width, height=height, seed=seed, index=index)
    png = rgb(renderer.render(s))
    webp = decode(renderer.render(replace(s, output_format="webp")))
    jpeg = decode(renderer.render(replace(s, output_format="jpeg")))
    assert (webp.format, webp.size, jpeg.format, jpeg.size) == ("WEBP", (width, height), "JPEG", (width, height))
    assert webp.convert("RGB").tobytes() == png.tobytes()
    if min(width, height) >= 128:  # smaller cards are mostly edges, which any q85 4:2:0 JPEG blurs
        assert mean_abs_diff(jpeg, png) < 16


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_the_seed_is_printed_in_jpeg_and_webp(fmt: OutputFormat) -> None:
    renderer = Renderer()
    box = renderer.label_box(1024, 1024)
    assert box is not None
    a = rgb(renderer.render(spec(width=1024, height=1024, seed=1111111111, output_format=fmt)))
    b = rgb(renderer.render(spec(width=1024, height=1024, seed=2222222222, output_format=fmt)))
    png = rgb(renderer.render(spec(width=1024, height=1024, seed=1111111111)))
    assert mean_abs_diff(a, png, box) < 8  # the label, digits included, as the PNG shows it
    light = sum(1 for v in a.convert("L").crop(box).tobytes() if v > 200)
    assert light > 0.01 * (box[2] - box[0]) * (box[3] - box[1])
    assert a.crop(box).tobytes() != b.crop(box).tobytes()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_many_jpeg_and_webp_seeds_are_all_different_pictures(fmt: OutputFormat) -> None:
    renderer = Renderer()
    pictures = {
        rgb(renderer.render(spec(width=512, height=512, seed=seed, output_format=fmt), cache=False)).tobytes()
        for seed in range(40)
    }
    assert len(pictures) == 40


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_a_repeated_seed_gives_the_same_bytes_after_other_seeds(fmt: OutputFormat) -> None:
    """Whatever the shared pieces hold (other seeds, lengths, hues), a seed's image is the same bytes."""
    s = spec(width=1024, height=1024, seed=987654321, index=2, output_format=fmt)
    cold = Renderer(cache_bytes=0, pieces_bytes=0).render(s)
    warm = Renderer()
    for seed in [*range(40), *range(987654300, 987654340)]:
        warm.render(spec(width=1024, height=1024, seed=seed, index=2, output_format=fmt), cache=False)
    assert warm.render(s, cache=False) == cold
    assert base64.b64decode(warm.render_b64_json(s, cache=False)[1:-1]) == cold


@pytest.mark.parametrize("fmt", OUTPUT_FORMATS)
def test_edits_are_the_same_bytes_whatever_was_edited_before(fmt: OutputFormat) -> None:
    source, other = encode(photo(256, 256)), encode(photo(200, 120), "JPEG")
    s = spec(seed=424242, output_format=fmt)
    cold = Renderer(cache_bytes=0, pieces_bytes=0).render_edit(s, source)
    warm = Renderer()
    for seed in range(20):
        warm.render_edit(spec(seed=seed, output_format=fmt), source, cache=False)
        warm.render_edit(spec(seed=seed, output_format=fmt), other, cache=False)
    assert warm.render_edit(s, source, cache=False) == cold
    assert warm.render_edit(s, source, cache=False) == cold


def test_edit_png_is_well_formed_and_shows_the_seed() -> None:
    renderer = Renderer()
    source = encode(photo(400, 300))
    a = renderer.render_edit(spec(seed=1111111111), source)
    b = renderer.render_edit(spec(seed=2222222222), source)
    for data in (a, b):
        parts = chunks(data)
        assert [tag for tag, _ in parts][:2] == [b"IHDR", b"PLTE"] and parts[-1][0] == b"IEND"
        raw = zlib.decompress(b"".join(body for tag, body in parts if tag == b"IDAT"))
        assert len(raw) == 300 * (400 + 1)
    box = renderer.label_box(400, 300)
    assert box is not None
    assert rgb(a).crop(box).tobytes() != rgb(b).crop(box).tobytes()
    outside = outside_label(renderer, 400, 300)
    assert masked_mean_diff(rgb(a), rgb(b), outside) > 0  # the tint differs too


@pytest.mark.parametrize("colours", [64, 4096])  # few colours (a palette) and many (truecolour)
def test_edits_of_few_and_many_colour_sources_agree_on_what_is_kept(colours: int) -> None:
    """The palette path (few posterised colours) and the general one both keep the label and tint."""
    side = 64 if colours == 64 else 512
    if colours > 64:
        source = Image.merge("RGB", [Image.effect_noise((side, side), 120) for _ in range(3)])
        assert ImageOps.posterize(source, 3).getcolors(256) is None  # more than a palette holds
    else:
        source = photo(side, side)
    renderer = Renderer()
    out = rgb(renderer.render_edit(spec(), encode(source)))
    assert out.size == (side, side)
    assert mean_abs_diff(source, out) > 10
