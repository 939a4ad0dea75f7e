"""Hypothesis strategies for realistic requests, driven by the target's own catalog.

Valid model x parameter combinations come from the published ``supported_parameters``; image inputs
are real PNG / JPEG / WebP files (data URLs and multipart parts, one or several, with masks); the
near-miss strategies change exactly one thing so that the request must be refused.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from PIL import Image

from .catalog import ModelInfo, TargetCatalog, parse_wxh

FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
PROMPTS = ("a red bicycle leaning on a wall", "studio photo of a teapot", "watercolor lighthouse at dusk")


@dataclass
class DomainRequest:
    """One request of the domain suite, before auth is added.

    ``fields`` is what checks read (the JSON object, or the multipart form with file bytes).
    """

    operation_id: str
    method: str
    path: str
    fields: dict[str, Any] = field(default_factory=dict)
    multipart: bool = False
    auth: str = "bearer"  # bearer | x-api-key | none
    headers: dict[str, str] = field(default_factory=dict)
    expect: str = "success"  # success | rejected
    label: str = ""
    raw: bytes | None = None  # a deliberately malformed body (sent as is, with ``headers``)
    query: dict[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)

    def httpx_kwargs(self) -> dict[str, Any]:
        if self.raw is not None:
            return {"content": self.raw}
        if self.method == "GET":
            return {"params": self.query} if self.query else {}
        if not self.multipart:
            return {"json": self.fields}
        body, content_type = encode_multipart(self.fields)
        return {"content": body, "headers_extra": {"content-type": content_type}}

    def summary(self) -> str:
        shown = {k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else _short(v)) for k, v in self.fields.items()}
        return f"{self.method} {self.path} {shown}"


def encode_multipart(fields: dict[str, Any], boundary: str = "nanogpt-contract-boundary") -> tuple[bytes, str]:
    """multipart/form-data by hand: always multipart, even without a file part (httpx would not)."""
    chunks: list[bytes] = []
    for name, value in fields.items():
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
            if isinstance(item, bytes):
                fmt = sniff(item)
                filename = f"{name.strip('[]')}-{index}.{fmt}"
                head += f'; filename="{filename}"\r\nContent-Type: {FORMATS.get(fmt, FORMATS["png"])[1]}'
                chunks.append(head.encode() + b"\r\n\r\n" + item + b"\r\n")
            else:
                chunks.append(head.encode() + b"\r\n\r\n" + str(item).encode() + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 48:
        return value[:32] + f"...<{len(value)} chars>"
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[8:12] == b"WEBP":
        return "webp"
    return "png"


def encode_image(width: int, height: int, color: tuple[int, int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=FORMATS[fmt][0])
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    return f"data:{FORMATS[sniff(data)][1]};base64,{base64.b64encode(data).decode()}"


@st.composite
def images(draw: st.DrawFn, formats: tuple[str, ...] = ("png", "jpeg", "webp")) -> bytes:
    """A real, small, decodable image in one of the input formats."""
    fmt = draw(st.sampled_from(formats))
    width = draw(st.integers(8, 48))
    height = draw(st.integers(8, 48))
    color = draw(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
    return encode_image(width, height, color, fmt)


def mask_for(image: bytes) -> bytes:
    with Image.open(io.BytesIO(image)) as source:
        size = source.size
    buffer = io.BytesIO()
    Image.new("L", size, 255).save(buffer, format="PNG")
    return buffer.getvalue()


def _models(catalog: TargetCatalog, *, inputs: bool = False, only: list[str] | None = None) -> list[ModelInfo]:
    out = [m for m in catalog.models.values() if (not inputs or m.max_input_images > 0) and m.unit_prices()]
    if only is not None:
        out = [m for m in out if m.id in only]
    return sorted(out, key=lambda m: m.id)


@st.composite
def _count(draw: st.DrawFn, model: ModelInfo, cap: int) -> int:
    if model.fixed_image_count:
        return 1
    return draw(st.integers(1, max(1, min(model.n_max, cap))))


@st.composite
def images_generate(draw: st.DrawFn, catalog: TargetCatalog, cheap: bool = False, cap: int = 2) -> DomainRequest:
    """POST /api/v1/images with a published model x parameter combination."""
    model = _pick(draw, catalog, cheap=cheap)
    body: dict[str, Any] = {"model": model.id, "prompt": draw(st.sampled_from(PROMPTS))}
    if cheap:
        _cheap_size(model, body, "resolution")
    elif bool(model.resolutions) and draw(st.booleans()):
        body["resolution"] = draw(st.sampled_from(model.resolutions))
    elif bool(model.aspect_ratios) and draw(st.booleans()):
        body["aspect_ratio"] = draw(st.sampled_from(model.aspect_ratios))
    n = 1 if cheap else draw(_count(model, cap))
    style = draw(st.sampled_from(("n", "nImages", "both", "none")))
    if style == "n" or (style == "none" and n > 1):
        body["n"] = n
    elif style == "nImages":
        body["nImages"] = n
    elif style == "both":
        body["nImages"] = n
        body["n"] = 1 if n > 1 else min(2, max(1, model.n_max))
    if len(model.output_formats) > 0 and draw(st.booleans()):
        body["output_format"] = draw(st.sampled_from(model.output_formats))
    if bool(model.qualities) and draw(st.booleans()):
        body["quality"] = draw(st.sampled_from(model.qualities))
    if draw(st.booleans()):
        body["response_format"] = draw(st.sampled_from(("b64_json", "url")))
    if model.claims_seed and draw(st.booleans()):
        body["seed"] = draw(st.integers(0, 2**31))
    if model.max_input_images and draw(st.booleans()):
        count = draw(st.integers(1, min(2, model.max_input_images)))
        body["input_references"] = [data_url(draw(images())) for _ in range(count)]
    return DomainRequest("imagesGenerate", "POST", "/api/v1/images", body, label=f"{model.id}")


@st.composite
def openai_generate(
    draw: st.DrawFn, catalog: TargetCatalog, operation_id: str, path: str, cheap: bool = False, cap: int = 2
) -> DomainRequest:
    """The OpenAI-compatible generation route, with data-URL image inputs and masks where the model takes them."""
    model = _pick(draw, catalog, cheap=cheap)
    body: dict[str, Any] = {"model": model.id, "prompt": draw(st.sampled_from(PROMPTS))}
    if cheap:
        _cheap_size(model, body, "size")
    elif bool(model.wxh_sizes) and draw(st.booleans()):
        body["size"] = draw(st.sampled_from(model.wxh_sizes))
    n = 1 if cheap else draw(_count(model, cap))
    if n > 1 or draw(st.booleans()):
        body["n"] = n
    if draw(st.booleans()):
        body["response_format"] = draw(st.sampled_from(("b64_json", "url")))
    if model.claims_seed and draw(st.booleans()):
        body["seed"] = draw(st.integers(0, 2**31))
    if model.max_input_images and not cheap and draw(st.booleans()):
        source = draw(images())
        if model.max_input_images > 1 and draw(st.booleans()):
            body["imageDataUrls"] = [data_url(source), data_url(draw(images()))]
        else:
            body["imageDataUrl"] = data_url(source)
        if model.inpainting and draw(st.booleans()):
            body["maskDataUrl"] = data_url(mask_for(source))
    return DomainRequest(operation_id, "POST", path, body, label=model.id)


@st.composite
def openai_edit(
    draw: st.DrawFn, catalog: TargetCatalog, operation_id: str, path: str, cheap: bool = False, cap: int = 2
) -> DomainRequest:
    """Edits as multipart (``image`` / ``image[]`` files, ``mask``) or JSON data URLs."""
    model = _pick(draw, catalog, cheap=cheap, inputs=True)
    source = draw(images())
    multipart = draw(st.booleans())
    fields: dict[str, Any] = {"prompt": draw(st.sampled_from(PROMPTS)), "model": model.id}
    several = model.max_input_images > 1 and draw(st.booleans())
    if multipart:
        if several:
            fields["image[]"] = [source, draw(images())]
        else:
            fields["image"] = source
        if model.inpainting and draw(st.booleans()):
            fields["mask"] = mask_for(source)
    else:
        if several:
            fields["imageDataUrls"] = [data_url(source), data_url(draw(images()))]
        else:
            fields["imageDataUrl"] = data_url(source)
        if model.inpainting and draw(st.booleans()):
            fields["maskDataUrl"] = data_url(mask_for(source))
    if cheap:
        _cheap_size(model, fields, "size")
    elif bool(model.wxh_sizes) and draw(st.booleans()):
        fields["size"] = draw(st.sampled_from(model.wxh_sizes))
    n = 1 if cheap else draw(_count(model, cap))
    if n > 1:
        fields["n"] = n
    if draw(st.booleans()):
        fields["response_format"] = draw(st.sampled_from(("b64_json", "url")))
    return DomainRequest(operation_id, "POST", path, fields, multipart=multipart, label=model.id)


@st.composite
def legacy_generate(draw: st.DrawFn, catalog: TargetCatalog, cheap: bool = False, cap: int = 2) -> DomainRequest:
    """The legacy route (x-api-key only): ``resolution`` or ``width``/``height``, ``nImages``."""
    model = _pick(draw, catalog, cheap=cheap)
    body: dict[str, Any] = {"model": model.id, "prompt": draw(st.sampled_from(PROMPTS))}
    if cheap:
        _cheap_size(model, body, "resolution")
    elif bool(model.wxh_sizes) and draw(st.booleans()):
        size = draw(st.sampled_from(model.wxh_sizes))
        if draw(st.booleans()):
            body["resolution"] = size
        else:
            width, height = parse_wxh(size) or (1024, 1024)
            body.update(width=width, height=height)
    n = 1 if cheap else draw(_count(model, cap))
    if n > 1 or draw(st.booleans()):
        body["nImages"] = n
    if model.claims_seed and draw(st.booleans()):
        body["seed"] = draw(st.integers(0, 2**31))
    if model.max_input_images and not cheap and draw(st.booleans()):
        body["imageDataUrl"] = data_url(draw(images()))
    return DomainRequest("legacyGenerateImage", "POST", "/api/generate-image", body, auth="x-api-key", label=model.id)


def _pick(draw: st.DrawFn, catalog: TargetCatalog, *, cheap: bool, inputs: bool = False) -> ModelInfo:
    if cheap:
        model = catalog.cheapest(inputs=1 if inputs else 0)
        if model is None:
            raise LookupError("the catalog lists no priced model")
        return model
    models = _models(catalog, inputs=inputs)
    if not models:
        raise LookupError("the catalog lists no usable model")
    return draw(st.sampled_from(models))


def _cheap_size(model: ModelInfo, body: dict[str, Any], name: str) -> None:
    """The smallest published WxH size (live runs pay by the image and sometimes by the pixel)."""
    sizes = sorted(model.wxh_sizes, key=lambda s: (parse_wxh(s) or (0, 0))[0] * (parse_wxh(s) or (0, 0))[1])
    if sizes:
        body[name] = sizes[0]


def positive_requests(catalog: TargetCatalog, cheap: bool, cap: int = 2) -> dict[str, st.SearchStrategy[DomainRequest]]:
    """One strategy per generating operation."""
    return {
        "imagesGenerate": images_generate(catalog, cheap, cap),
        "openaiGenerateImage": openai_generate(catalog, "openaiGenerateImage", "/v1/images/generations", cheap, cap),
        "openaiGenerateImageApi": openai_generate(
            catalog, "openaiGenerateImageApi", "/api/v1/images/generations", cheap, cap
        ),
        "openaiEditImage": openai_edit(catalog, "openaiEditImage", "/api/v1/images/edits", cheap, cap),
        "openaiEditImageAlias": openai_edit(catalog, "openaiEditImageAlias", "/api/v1/images/edit", cheap, cap),
        "legacyGenerateImage": legacy_generate(catalog, cheap, cap),
    }


@st.composite
def near_miss(draw: st.DrawFn, catalog: TargetCatalog) -> DomainRequest:
    """A valid request with exactly one thing wrong: it must be refused (and is therefore free)."""
    base = draw(images_generate(catalog, cheap=False, cap=1))
    body = {k: v for k, v in base.fields.items() if k not in ("n", "nImages", "output_format")}
    model = catalog.get(body["model"])
    assert model is not None
    options = ["size", "image", "model", "tiny"]
    if not model.fixed_image_count:
        options.append("count")
    # only a published output_format enum says what is refused (legacy descriptors do not list formats)
    published = model.enum("output_format")
    missing_formats = [f for f in ("png", "jpeg", "webp") if f not in model.output_formats] if published else []
    if missing_formats:
        options.append("format")
    if model.max_input_images == 0:
        options.append("inputs")
    what = draw(st.sampled_from(options))
    if what == "size":
        body.pop("aspect_ratio", None)
        body["resolution"] = "0x0"
    elif what == "count":
        body["n"] = model.n_max + 1
    elif what == "format":
        body["output_format"] = draw(st.sampled_from(missing_formats))
    elif what == "inputs":
        body["input_references"] = [data_url(draw(images()))]
    elif what == "model":
        body["model"] = "no-such-model-" + draw(st.text("abcdefgh", min_size=4, max_size=8))
    elif what == "tiny" and model.max_input_images:
        body["input_references"] = [data_url(encode_image(4, 4, (0, 0, 0), "png"))]
    elif what == "tiny":
        body["resolution"] = "0x0"
    else:  # a truncated image
        if model.max_input_images:
            truncated = draw(images())[:40]
            body["input_references"] = ["data:image/png;base64," + base64.b64encode(truncated).decode()]
        else:
            body["input_references"] = [data_url(draw(images()))]
    return DomainRequest("imagesGenerate", "POST", "/api/v1/images", body, expect="rejected", label=f"near-miss:{what}")
