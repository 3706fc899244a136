"""Tests for lookalike.data.decode: every input kind, mode, and way an image can be bad."""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps, features

from lookalike.data.decode import ImageDecodeError, decode_image, read_image_bytes

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def rgb_at(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


def noise(size: int = 64) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_claiming_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR chunk is rewritten to claim another size (valid CRC)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    # 8-byte signature, then IHDR: length (4), type (4), 13 data bytes, CRC of type and data.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def assert_decode_error(source: object, *words: str, **kwargs: object) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(source, **kwargs)  # type: ignore[arg-type]
    message = str(info.value).lower()
    assert message.startswith("cannot decode image")
    for word in words:
        assert word in message, message
    return info.value


# --- Input kinds ---------------------------------------------------------------------------


def test_path_str_pathlike_bytes_and_pil_inputs_agree(tmp_path: Path) -> None:
    image = Image.new("RGB", (8, 6), RED)
    path = write(tmp_path, "red.png", encode(image, "PNG"))
    data = path.read_bytes()
    sources = [path, str(path), data, bytearray(data), memoryview(data), image]
    for source in sources:
        decoded = decode_image(source)  # type: ignore[arg-type]
        assert decoded.mode == "RGB"
        assert decoded.size == (8, 6)
        assert rgb_at(decoded, 3, 3) == RED


def test_result_is_a_standalone_loaded_image(tmp_path: Path) -> None:
    decoded = decode_image(write(tmp_path, "a.jpg", encode(noise(), "JPEG")))
    assert type(decoded) is Image.Image  # not a lazily-read ImageFile
    assert rgb_at(decoded, 0, 0) is not None


def test_callers_pil_image_is_not_mutated() -> None:
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    before = image.tobytes()
    decoded = decode_image(image)
    assert decoded is not image
    assert (image.mode, image.size, image.tobytes()) == ("RGBA", (4, 4), before)
    decoded.putpixel((0, 0), BLUE)
    assert image.tobytes() == before


def test_rgb_pil_input_is_copied() -> None:
    image = Image.new("RGB", (4, 4), RED)
    decoded = decode_image(image)
    decoded.putpixel((0, 0), BLUE)
    assert image.getpixel((0, 0)) == RED


def test_read_image_bytes_returns_file_content(tmp_path: Path) -> None:
    data = encode(noise(8), "PNG")
    assert read_image_bytes(write(tmp_path, "a.png", data)) == data


# --- Orientation ---------------------------------------------------------------------------


def red_left_blue_right() -> Image.Image:
    image = Image.new("RGB", (40, 20), RED)
    image.paste(BLUE, (20, 0, 40, 20))
    return image


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    path = write(tmp_path, "rotated.jpg", encode(red_left_blue_right(), "JPEG", exif=exif))
    decoded = decode_image(path)
    assert decoded.size == (20, 40)
    assert close_to(rgb_at(decoded, 10, 5), RED)  # the left edge turned to the top
    assert close_to(rgb_at(decoded, 10, 35), BLUE)


@pytest.mark.filterwarnings("error")
def test_broken_exif_is_ignored(tmp_path: Path) -> None:
    data = encode(red_left_blue_right(), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    decoded = decode_image(write(tmp_path, "broken_exif.jpg", data))
    assert decoded.size == (40, 20)


def test_failing_exif_transpose_keeps_the_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(image: Image.Image) -> Image.Image:
        raise SyntaxError("bad IFD")

    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    image = red_left_blue_right()
    decoded = decode_image(image)
    assert decoded is not image
    assert decoded.size == (40, 20)
    assert rgb_at(decoded, 0, 0) == RED


# --- Modes ---------------------------------------------------------------------------------


def test_palette_with_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    image = Image.new("P", (4, 1), 0)
    image.putpalette([0, 0, 0, *RED, *GREEN] + [0] * (256 - 3) * 3)
    image.putpixel((1, 0), 1)
    image.putpixel((2, 0), 2)
    for fmt in ("PNG", "GIF"):
        decoded = decode_image(encode(image, fmt, transparency=0))
        assert rgb_at(decoded, 0, 0) == WHITE, fmt
        assert rgb_at(decoded, 1, 0) == RED, fmt
        assert rgb_at(decoded, 2, 0) == GREEN, fmt


def test_rgba_is_flattened_onto_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (3, 1), (255, 0, 0, 0))
    image.putpixel((1, 0), (0, 0, 0, 128))
    image.putpixel((2, 0), (0, 0, 255, 255))
    decoded = decode_image(write(tmp_path, "a.png", encode(image, "PNG")))
    assert rgb_at(decoded, 0, 0) == WHITE
    assert close_to(rgb_at(decoded, 1, 0), (127, 127, 127), tolerance=1)
    assert rgb_at(decoded, 2, 0) == BLUE


def test_la_is_flattened_onto_white(tmp_path: Path) -> None:
    image = Image.new("LA", (2, 1), (0, 0))
    image.putpixel((1, 0), (0, 255))
    decoded = decode_image(write(tmp_path, "a.png", encode(image, "PNG")))
    assert rgb_at(decoded, 0, 0) == WHITE
    assert rgb_at(decoded, 1, 0) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "La", "RGBa"])
def test_every_alpha_mode_turns_transparent_pixels_white(mode: str) -> None:
    decoded = decode_image(Image.new(mode, (2, 2)))  # all channels 0: fully transparent
    assert decoded.mode == "RGB"
    assert rgb_at(decoded, 0, 0) == WHITE


def test_keyed_transparency_on_rgb_png_is_flattened() -> None:
    image = Image.new("RGB", (2, 1), RED)
    image.putpixel((1, 0), GREEN)
    decoded = decode_image(encode(image, "PNG", transparency=RED))
    assert rgb_at(decoded, 0, 0) == WHITE
    assert rgb_at(decoded, 1, 0) == GREEN


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    path = write(tmp_path, "cmyk.jpg", encode(image, "JPEG", quality=95))
    decoded = decode_image(path)
    assert decoded.mode == "RGB"
    assert close_to(rgb_at(decoded, 8, 8), RED)


@pytest.mark.parametrize(
    ("mode", "colour"),
    [("YCbCr", (255, 128, 128)), ("LAB", (255, 128, 128)), ("HSV", (0, 0, 255))],
)
def test_other_colour_spaces_become_rgb(mode: str, colour: tuple[int, int, int]) -> None:
    decoded = decode_image(Image.new(mode, (2, 2), colour))  # white in each colour space
    assert decoded.mode == "RGB"
    assert close_to(rgb_at(decoded, 0, 0), WHITE, tolerance=2)


def test_16_bit_grayscale_png_is_scaled_by_bit_depth(tmp_path: Path) -> None:
    pixels = np.array([[0, 32768, 65535, 257]], dtype=np.uint16)
    image = Image.fromarray(pixels)
    assert image.mode == "I;16"
    decoded = decode_image(write(tmp_path, "deep.png", encode(image, "PNG")))
    assert [rgb_at(decoded, x, 0) for x in range(4)] == [
        (0, 0, 0),
        (128, 128, 128),
        (255, 255, 255),
        (1, 1, 1),
    ]


def test_big_endian_16_bit_is_scaled_too() -> None:
    raw = np.array([65535, 0, 32768], dtype=">u2").tobytes()
    decoded = decode_image(Image.frombytes("I;16B", (3, 1), raw))
    assert [rgb_at(decoded, x, 0) for x in range(3)] == [WHITE, (0, 0, 0), (128, 128, 128)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # 0..1 floats
        ([0.0, 127.0, 255.0], [0, 127, 255]),  # floats holding 8-bit values
        ([-3.0, float("nan"), 1.0], [0, 0, 255]),  # negatives and NaN go black
    ],
)
def test_float_mode_is_scaled(values: list[float], expected: list[int]) -> None:
    image = Image.fromarray(np.array([values], dtype=np.float32))
    assert image.mode == "F"
    decoded = decode_image(image)
    assert [rgb_at(decoded, x, 0)[0] for x in range(3)] == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [([0, 128, 255], [0, 128, 255]), ([0, 32768, 65535], [0, 128, 255])],
)
def test_32_bit_integer_mode_is_scaled_by_its_data_depth(
    values: list[int], expected: list[int]
) -> None:
    image = Image.fromarray(np.array([values], dtype=np.int32))
    assert image.mode == "I"
    decoded = decode_image(image)
    assert [rgb_at(decoded, x, 0)[0] for x in range(3)] == expected


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_and_bilevel_become_rgb(tmp_path: Path, mode: str) -> None:
    image = Image.new(mode, (4, 4), 0)
    image.putpixel((1, 1), 255 if mode == "L" else 1)
    decoded = decode_image(write(tmp_path, "gray.png", encode(image, "PNG")))
    assert decoded.mode == "RGB"
    assert rgb_at(decoded, 0, 0) == (0, 0, 0)
    assert rgb_at(decoded, 1, 1) == WHITE


# --- Animation -----------------------------------------------------------------------------


def animation_frames() -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), colour) for colour in (RED, GREEN, BLUE)]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_decodes_to_its_first_frame(tmp_path: Path, fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    first, *rest = animation_frames()
    data = encode(first, fmt, save_all=True, append_images=rest, duration=100, loop=0)
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 3
    decoded = decode_image(write(tmp_path, f"anim.{fmt.lower()}", data))
    assert decoded.size == (8, 8)
    assert close_to(rgb_at(decoded, 4, 4), RED)


# --- Limits --------------------------------------------------------------------------------


def test_pixel_limit_is_enforced() -> None:
    image_bytes = encode(Image.new("RGB", (10, 10)), "PNG")
    assert decode_image(image_bytes, max_pixels=100).size == (10, 10)
    assert_decode_error(image_bytes, "pixels", "limit", max_pixels=99)
    assert_decode_error(Image.new("RGB", (10, 10)), "pixels", "limit", max_pixels=99)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (9_000, 9_000),  # over our default limit, under PIL's warning threshold
        (10_000, 10_000),  # over PIL's warning threshold
        (100_000, 100_000),  # over PIL's hard limit
    ],
)
def test_png_header_claiming_huge_size_is_refused_before_loading(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    def never_load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data must not be loaded for an oversized image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never_load)
    max_image_pixels = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    assert_decode_error(png_claiming_size(width, height), "too many pixels")
    # Nothing global was changed to get there.
    assert max_image_pixels == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters


def test_byte_limit_applies_to_bytes_and_paths(tmp_path: Path) -> None:
    data = encode(noise(), "PNG")
    path = write(tmp_path, "a.png", data)
    limit = len(data) - 1
    assert_decode_error(data, "too large", "bytes", max_bytes=limit)
    assert_decode_error(path, "too large", "bytes", max_bytes=limit)
    with pytest.raises(ImageDecodeError, match="too large"):
        read_image_bytes(path, max_bytes=limit)
    assert decode_image(path, max_bytes=len(data)).size == (64, 64)


# --- Bad files -----------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.jpg", b"")
    error = assert_decode_error(path, "empty", "0 bytes")
    assert error.source == str(path)
    assert str(error) == f"cannot decode image {str(path)!r}: file is empty (0 bytes)"
    assert_decode_error(b"", "empty")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image(tmp_path: Path, fmt: str) -> None:
    data = encode(noise(), fmt)
    path = write(tmp_path, f"cut.{fmt.lower()}", data[: len(data) // 2])
    assert_decode_error(path, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n" * 20)
    error = assert_decode_error(path, "not a supported image")
    assert error.__cause__ is not None


def test_format_outside_the_allow_list_is_refused() -> None:
    # PIL can open PCX, but the decoder only accepts the common web/catalogue formats.
    assert_decode_error(encode(Image.new("RGB", (4, 4)), "PCX"), "not a supported image")


def test_missing_path(tmp_path: Path) -> None:
    assert_decode_error(tmp_path / "nope.jpg", "not found")


def test_directory(tmp_path: Path) -> None:
    assert_decode_error(tmp_path, "directory")


def test_bytes_and_pil_sources_are_named_in_errors() -> None:
    assert str(assert_decode_error(b"garbage")).startswith("cannot decode image <bytes>:")
    error = assert_decode_error(Image.new("RGB", (4, 4)), max_pixels=1)
    assert error.source == "<PIL image>"


def test_truncated_lazy_pil_image_raises_decode_error() -> None:
    data = encode(noise(), "JPEG")
    lazy = Image.open(io.BytesIO(data[: len(data) // 2]))
    assert_decode_error(lazy, "truncated")


def test_error_survives_pickling() -> None:
    error = ImageDecodeError("x.jpg", "file is empty (0 bytes)")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.source, copy.reason, str(copy)) == (error.source, error.reason, str(error))
    assert isinstance(copy, ValueError)


# --- Draft ---------------------------------------------------------------------------------


def test_draft_size_decodes_large_jpeg_at_reduced_scale(tmp_path: Path) -> None:
    path = write(tmp_path, "big.jpg", encode(Image.new("RGB", (2000, 2000), RED), "JPEG"))
    decoded = decode_image(path, draft_size=224)
    assert min(decoded.size) >= 224 and max(decoded.size) < 2000
    assert close_to(rgb_at(decoded, 10, 10), RED)
    assert decode_image(path).size == (2000, 2000)


def test_draft_size_is_ignored_for_other_formats() -> None:
    data = encode(Image.new("RGB", (600, 600)), "PNG")
    assert decode_image(data, draft_size=100).size == (600, 600)


def test_draft_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="draft_size"):
        decode_image(b"x", draft_size=0)
