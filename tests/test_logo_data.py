"""Logo files to canonical RGBA logos, the shared logo list, brand names and the hash split."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike.data.logos import (
    LogoRenderError,
    LogoSpec,
    logo_on_background,
    normalise_brand,
    render_logo,
    shared_logo_specs,
    split_by_item,
)

RED = (220, 20, 30)


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def card_with_bar(card: tuple[int, int, int], ink: tuple[int, int, int]) -> Image.Image:
    """A 120x80 opaque card with a 60x20 bar of ``ink`` at (30, 40)."""
    image = Image.new("RGB", (120, 80), card)
    ImageDraw.Draw(image).rectangle((30, 40, 89, 59), fill=ink)
    return image


def test_png_with_alpha_keeps_alpha_and_crops_to_the_visible_extent() -> None:
    image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((50, 20, 129, 59), fill=(*RED, 255))  # 80 x 40 ellipse
    logo = render_logo(png_bytes(image), size=64)
    assert logo.mode == "RGBA"
    assert logo.size == (64, 32)
    pixels = np.asarray(logo)
    assert pixels[0, 0, 3] == 0  # an ellipse leaves its box's corners transparent
    assert tuple(pixels[16, 32]) == (*RED, 255)


@pytest.mark.parametrize(
    ("card", "ink"), [((255, 255, 255), (20, 20, 160)), ((0, 0, 0), (250, 240, 200))]
)
def test_opaque_png_gets_alpha_from_the_card_colour(
    card: tuple[int, int, int], ink: tuple[int, int, int]
) -> None:
    logo = render_logo(png_bytes(card_with_bar(card, ink)), size=60)
    assert logo.mode == "RGBA"
    assert logo.size == (60, 20)  # cropped to the bar, whatever the card
    pixels = np.asarray(logo)
    assert (pixels[..., 3] == 255).all()
    assert np.abs(pixels[..., :3].astype(int) - ink).max() <= 2


def test_opaque_logo_on_white_has_transparent_holes_and_soft_edges() -> None:
    image = Image.new("RGB", (100, 100), (255, 255, 255))
    ImageDraw.Draw(image).ellipse((10, 10, 89, 89), outline=(0, 0, 0), width=12)
    image = image.resize((50, 50), Image.Resampling.LANCZOS)  # anti-aliased edges
    logo = render_logo(png_bytes(image, "JPEG"), size=50)
    alpha = np.asarray(logo)[..., 3]
    assert alpha[25, 25] == 0  # the ring's hole is the card, hence transparent
    assert alpha.max() == 255
    assert ((alpha > 0) & (alpha < 255)).any()  # edges blend instead of a hard cut


def test_opaque_picture_without_a_plain_border_stays_opaque() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8), "RGB")
    logo = render_logo(png_bytes(noise), size=50)
    assert logo.size == (50, 40)
    assert (np.asarray(logo)[..., 3] == 255).all()


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40">'
    b'<rect x="10" y="15" width="20" height="10" fill="#0000ff"/></svg>'
)


def test_svg_bytes_render_cropped_to_the_drawing() -> None:
    logo = render_logo(SVG, size=64)
    assert logo.mode == "RGBA"
    assert logo.size == (64, 32)
    assert tuple(np.asarray(logo)[16, 32]) == (0, 0, 255, 255)


def test_svg_file_is_detected_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "mark.svg"
    path.write_bytes(SVG.split(b"\n", 1)[1])  # no XML declaration
    assert render_logo(path, size=40).size == (40, 20)
    assert render_logo(str(path), size=40).size == (40, 20)


def test_small_drawing_in_a_big_svg_page_is_rendered_sharp() -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="1000">'
        b'<circle cx="500" cy="500" r="40" fill="black"/></svg>'
    )
    logo = render_logo(svg, size=128)
    assert logo.size == (128, 128)
    alpha = np.asarray(logo)[..., 3]
    # Rendered at the needed resolution, not upscaled from a 20-pixel blob: a crisp rim.
    assert alpha[64, 64] == 255
    assert np.count_nonzero((alpha > 0) & (alpha < 255)) < 0.1 * alpha.size


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        png_bytes(Image.new("RGB", (32, 32), "white"))[:60],
        b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='",
        b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'></svg>",
        png_bytes(Image.new("RGBA", (16, 16), (0, 0, 0, 0))),
        png_bytes(Image.new("RGB", (16, 16), (255, 255, 255))),
    ],
    ids=["text", "empty", "png-header", "truncated", "broken-svg", "blank-svg", "clear", "blank"],
)
def test_bad_input_raises_logo_render_error(data: bytes) -> None:
    with pytest.raises(LogoRenderError) as info:
        render_logo(data)
    assert isinstance(info.value, ValueError)
    assert info.value.source == "<bytes>"
    assert info.value.reason


def test_missing_and_corrupt_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(LogoRenderError, match=r"missing\.png"):
        render_logo(tmp_path / "missing.png")
    broken = tmp_path / "broken.svg"
    broken.write_text("<svg><g></svg>")
    with pytest.raises(LogoRenderError, match=r"broken\.svg"):
        render_logo(broken)


def test_svg_with_an_external_entity_is_refused() -> None:
    svg = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&x;</text></svg>'
    )
    with pytest.raises(LogoRenderError):
        render_logo(svg)


def test_logo_on_background_flattens_to_rgb() -> None:
    logo = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    logo.putpixel((0, 0), (255, 0, 0, 255))
    flat = logo_on_background(logo, (0, 0, 0))
    assert flat.mode == "RGB"
    assert flat.getpixel((0, 0)) == (255, 0, 0)
    assert flat.getpixel((3, 1)) == (0, 0, 0)
    assert logo_on_background(logo).getpixel((3, 1)) == (255, 255, 255)


# --------------------------------------------------------------------------- catalogue


def test_normalise_brand() -> None:
    assert normalise_brand("Alfa Romeo") == normalise_brand("alfa-romeo") == "alfaromeo"
    assert normalise_brand("Citroën") == "citroen"
    assert normalise_brand(".NET") == "net"
    assert normalise_brand("Mercedes-Benz ") == "mercedesbenz"
    assert normalise_brand("3M") == "3m"


KEYS = [f"item{i}" for i in range(20)]


def test_split_is_deterministic_and_stable_across_runs() -> None:
    train, held_out = split_by_item(KEYS, str, 0.3, seed=7)
    assert (train, held_out) == split_by_item(KEYS, str, 0.3, seed=7)
    # Fixed by SHA-256 of "seed\0key": a changed scheme would move benchmark items.
    assert held_out == ["item0", "item4", "item8", "item11", "item15"]


def test_split_is_a_disjoint_cover_that_keeps_order() -> None:
    keys = [f"logo/{i}" for i in range(2000)]
    train, held_out = split_by_item(keys, str, 0.2, seed=1)
    assert set(train).isdisjoint(held_out)
    assert sorted(train + held_out) == sorted(keys)
    assert train == [k for k in keys if k in set(train)]
    assert 0.17 < len(held_out) / len(keys) < 0.23
    assert split_by_item(keys, str, 0.2, seed=2)[1] != held_out
    # A larger fraction holds out a superset: training on the default split stays clean.
    assert set(held_out) <= set(split_by_item(keys, str, 0.3, seed=1)[1])


def test_split_keeps_equal_keys_together_and_checks_the_fraction() -> None:
    items = [("a", 1), ("a", 2), ("b", 3)] * 5
    train, held_out = split_by_item(items, lambda item: item[0], 0.5, seed=3)
    assert {k for k, _ in train}.isdisjoint({k for k, _ in held_out})
    assert split_by_item(items, lambda item: item[0], 0.0, seed=3)[1] == []
    assert split_by_item(items, lambda item: item[0], 1.0, seed=3)[0] == []
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_by_item(items, lambda item: item[0], 1.5, seed=3)


def write_fake_shared_logos(root: Path) -> None:
    icons = root / "simple_icons"
    (icons / "svg").mkdir(parents=True)
    (icons / "labels.csv").write_text(
        "svg,png,slug,title,hex,png_background,aliases\n"
        "svg/zeta.svg,png/zeta.png,zeta,Zeta,000000,white,\n"
        "svg/dotnet.svg,png/dotnet.png,dotnet,.NET,512BD4,white,Dot Net\n",
        encoding="utf-8",
    )
    cars = root / "car_logos"
    (cars / "images").mkdir(parents=True)
    (cars / "labels.csv").write_text(
        "image,slug,name,width,height\n"
        "images/alfa-romeo.png,alfa-romeo,Alfa Romeo,256,256\n"
        "images/volvo.png,volvo,,256,256\n",
        encoding="utf-8",
    )


def test_shared_logo_specs_lists_both_sets_sorted(tmp_path: Path) -> None:
    write_fake_shared_logos(tmp_path)
    specs = shared_logo_specs(tmp_path)
    assert specs == [
        LogoSpec(
            "car_logos/alfa-romeo", "Alfa Romeo", tmp_path / "car_logos/images/alfa-romeo.png"
        ),
        LogoSpec("car_logos/volvo", "volvo", tmp_path / "car_logos/images/volvo.png"),
        LogoSpec("simple_icons/dotnet", ".NET", tmp_path / "simple_icons/svg/dotnet.svg"),
        LogoSpec("simple_icons/zeta", "Zeta", tmp_path / "simple_icons/svg/zeta.svg"),
    ]
