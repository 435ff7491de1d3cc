"""Still pictures decode as a browser shows them: upright, 8-bit sRGB, transparency on white, sizes as displayed.

Why: methods analysed what Pillow's defaults give, not what people see: an
EXIF-rotated photo came out sideways (OCR read the lines scrambled), a 16-bit
PNG came out white (OCR empty, one colour #ffffff). Each kind below is a
family of members generated in ``tests.media_corpus.pictures`` with its truth;
pixels are compared with the upright control, and a representative member per
kind is read by the local OCR, which must give the rendered words in order.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ai_methods import images
from ai_methods.errors import InvalidInputError
from ai_methods.inputs import IMAGE, prepare_inputs
from ai_methods.media import pictures
from ai_methods.media.errors import MediaDecodeError
from tests.media_corpus import pictures as corpus

ORIENTATION_CASES = [corpus.orientation_member(o, fmt) for fmt in ("JPEG", "PNG", "WEBP") for o in range(1, 9)]
MALFORMED_CASES = corpus.malformed_exif_members()
MODE_CASES = corpus.mode_members()
ICC_CASES = corpus.icc_members()
ALL_CASES = ORIENTATION_CASES + MALFORMED_CASES + MODE_CASES + ICC_CASES + [corpus.single_frame_gif()]


async def _ocr_words(runner, data: bytes) -> list[str]:
    out = (await runner.run("ocr_text", image=data)).output
    return " ".join(line["text"] for line in out["lines"]).split()


def _words(phrases) -> list[str]:
    return " ".join(phrases).split()


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_every_member_decodes_as_displayed(case):
    info = pictures.probe_picture(case.data)
    assert (info.width, info.height) == case.displayed_size
    assert info.orientation == case.orientation
    im = pictures.decode_picture(case.data)
    assert im.mode == "RGB" and im.size == case.displayed_size
    assert corpus.mean_diff(im, case.control) <= case.max_mean_diff


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: c.id)
def test_bytes_and_path_give_the_same_picture(case, tmp_path):
    path = tmp_path / "picture.bin"
    path.write_bytes(case.data)
    assert pictures.probe_picture(path) == pictures.probe_picture(case.data)
    assert np.array_equal(np.asarray(pictures.decode_picture(path)), np.asarray(pictures.decode_picture(case.data)))


@pytest.mark.parametrize("case", ORIENTATION_CASES, ids=lambda c: c.id)
def test_stored_size_and_orientation_are_reported(case):
    info = pictures.probe_picture(case.data, decode=False)
    assert info.orientation == case.orientation
    swapped = case.orientation in (5, 6, 7, 8)
    w, h = case.displayed_size
    assert (info.stored_width, info.stored_height) == ((h, w) if swapped else (w, h))
    assert info.needs_conversion == (case.orientation != 1)


OCR_CASES = [c for c in ORIENTATION_CASES if c.name.startswith("jpeg-")] + [
    c for c in ORIENTATION_CASES if c.name in ("png-6", "webp-8")
] + [
    c for c in MALFORMED_CASES if c.name in ("zero-denominator-rational", "ifd-count-beyond-data")
] + [c for c in MODE_CASES if c.name in ("I16-png-gray16", "CMYK-jpeg-no-adobe-marker", "LA16-png", "F-tiff-unit-range")] + [
    c for c in ICC_CASES if c.name == "linear-rgb-png"
]


@pytest.mark.parametrize("case", OCR_CASES, ids=lambda c: c.id)
async def test_local_ocr_reads_the_words_in_order(local_runner, case):
    assert await _ocr_words(local_runner, case.data) == _words(case.words)


async def test_sideways_control_is_what_ocr_would_read_without_orientation(local_runner):
    """The test above can fail: the stored (sideways) pixels of orientation 6 do not read as the words."""
    case = corpus.orientation_member(6)
    with Image.open(io.BytesIO(case.data)) as im:
        sideways = corpus.encode(im.convert("RGB"), "PNG")
    assert await _ocr_words(local_runner, sideways) != _words(case.words)


def test_sixteen_bit_is_scaled_not_clipped():
    """png-16bit: every pixel within 1 of the 8-bit control (clipping made 30 -> 255)."""
    control = np.asarray(corpus.grey_ad().convert("RGB"), np.int16)
    for name in ("I16-png-gray16", "I16B-tiff", "I32-tiff-16bit-range"):
        case = next(c for c in MODE_CASES if c.name == name)
        got = np.asarray(pictures.decode_picture(case.data), np.int16)
        assert np.abs(got - control).max() <= 1, name
    with Image.open(io.BytesIO(MODE_CASES[3].data)) as im:
        assert im.mode == "I;16"  # the member really is what Pillow opens as I;16


async def test_dominant_colours_of_sixteen_bit_are_not_white(local_runner):
    case = next(c for c in MODE_CASES if c.name == "I16-png-gray16")
    control = next(c for c in MODE_CASES if c.name == "L-png")
    got = (await local_runner.run("dominant_colors", image=case.data)).output["colors"]
    want = (await local_runner.run("dominant_colors", image=control.data)).output["colors"]
    assert [c["hex"] for c in got] == [c["hex"] for c in want]
    assert got[0]["hex"] != "#ffffff"


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("I;16", 7710, 30),
        ("I;16B", 60395, 235),
        ("I;16L", 65535, 255),
        ("I;16N", 0, 0),
        ("I", 32896, 128),
        ("I", 70000, 255),  # above 16 bits: the top
        ("I", -5, 0),
        ("F", 0.5, 128),
        ("F", 2.0, 255),
        ("1", 1, 255),
        ("L", 77, 77),
    ],
)
def test_grey_modes_scale_to_eight_bits(mode, value, expected):
    assert pictures.displayed_rgb(Image.new(mode, (3, 2), value)).getpixel((1, 1)) == (expected,) * 3


@pytest.mark.parametrize(
    ("im", "expected"),
    [
        (Image.new("RGBA", (2, 2), (200, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (2, 2), (200, 0, 0, 255)), (200, 0, 0)),
        (Image.new("RGBA", (2, 2), (0, 0, 0, 128)), (127, 127, 127)),
        (Image.new("LA", (2, 2), (0, 0)), (255, 255, 255)),
        (Image.new("PA", (2, 2), (0, 0)), (255, 255, 255)),
        (Image.new("RGBa", (2, 2), (100, 0, 0, 255)), (100, 0, 0)),
        (Image.new("CMYK", (2, 2), (0, 255, 255, 0)), (255, 0, 0)),
        (Image.new("HSV", (2, 2), (0, 255, 255)), (255, 0, 0)),
        (Image.new("RGB", (2, 2), (10, 20, 30)).convert("YCbCr"), (10, 20, 30)),
    ],
    ids=lambda v: getattr(v, "mode", str(v)),
)
def test_colour_and_alpha_modes(im, expected):
    got = pictures.displayed_rgb(im).getpixel((0, 0))
    assert all(abs(a - b) <= 2 for a, b in zip(got, expected)), got


def test_lab_goes_through_colour_management():
    """Pillow's convert("RGB") reads LAB's L channel as grey: mid-grey LAB (50, 0, 0) must stay grey ~119."""
    lab = Image.new("LAB", (2, 2), (128, 128, 128))  # L=50 %, a=b=0
    assert pictures.displayed_rgb(lab).getpixel((0, 0)) == pytest.approx((119, 119, 119), abs=2)


def test_linear_profile_brightens_as_a_browser_shows():
    """The hand-made gamma-1.0 profile: stored 128 is shown as sRGB ~188, not 128."""
    data = corpus.encode(Image.new("RGB", (8, 8), (128, 128, 128)), "PNG", icc_profile=corpus.linear_rgb_profile())
    assert pictures.decode_picture(data).getpixel((0, 0)) == pytest.approx((188, 188, 188), abs=2)
    assert pictures.probe_picture(data).icc_profile is True


def test_xmp_orientation_is_ignored_but_pillow_would_apply_it():
    case = next(c for c in MALFORMED_CASES if c.name == "xmp-orientation-only")
    with Image.open(io.BytesIO(case.data)) as im:
        assert im.getexif().get(0x0112) == 6  # the trap: Pillow's getexif reads XMP
        assert pictures.exif_orientation(im) == 1


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (corpus.tiff_exif([(0x0112, 3, 1, corpus._short(6))]), 6),
        (corpus.tiff_exif([(0x0112, 3, 1, b"\x00\x08")], order=b"MM"), 8),
        (corpus.tiff_exif([(0x010F, 2, 4, b"Cam\x00"), (0x0112, 3, 1, corpus._short(3))]), 3),
        (corpus.tiff_exif([(0x0112, 4, 1, b"\x06\x00\x00\x00")]), 1),  # LONG, not SHORT
        (corpus.tiff_exif([(0x0112, 3, 1, corpus._short(6))], cut=20), 1),  # entry cut off
        (b"", 1),
        (b"Exif\x00\x00", 1),
        (b"Exif\x00\x00II*\x00", 1),
    ],
)
def test_orientation_reader(block, expected):
    assert pictures.orientation_from_exif(block) == expected


# ----------------------------------------------------------------------------- limits and corrupt files


def test_too_many_pixels_is_refused_from_the_header():
    with pytest.raises(MediaDecodeError) as info:
        pictures.probe_picture(corpus.png_claiming(9_000, 9_000))  # 81 M: ours, below Pillow's
    assert info.value.cause == "too_many_pixels" and "above the 80,000,000 pixel limit" in info.value.detail
    with pytest.raises(MediaDecodeError) as info:
        pictures.decode_picture(corpus.png_claiming(9_000, 9_000), max_pixels=1_000_000)
    assert info.value.cause == "too_many_pixels"


def test_pillow_bomb_limit_holds_when_ours_is_raised():
    with pytest.raises(MediaDecodeError) as info:
        pictures.probe_picture(corpus.png_claiming(9_500, 10_000), max_pixels=200_000_000)
    assert info.value.cause == "too_many_pixels" and "decompression-bomb limit" in info.value.detail
    with pytest.raises(MediaDecodeError) as info:  # twice Pillow's limit: Pillow raises on open
        pictures.probe_picture(corpus.png_claiming(20_000, 10_000), max_pixels=400_000_000)
    assert info.value.cause == "too_many_pixels"


@pytest.mark.parametrize(
    "data",
    [
        corpus.png_claiming(64, 64),  # a header without pixels
        corpus.encode(corpus.colour_ad(), "JPEG")[:3000],  # truncated
        corpus.encode(corpus.colour_ad(), "PNG")[:2000],
        b"GIF89a-but-broken",
        b"<html>not an image</html>",
    ],
    ids=["header-only", "truncated-jpeg", "truncated-png", "broken-gif", "html"],
)
def test_corrupt_files_are_corrupt_media(data):
    with pytest.raises(MediaDecodeError) as info:
        pictures.probe_picture(data)
    assert info.value.cause == "corrupt_media" and info.value.detail.startswith("image: ")
    with pytest.raises(MediaDecodeError) as decoded:
        pictures.decode_picture(data)
    for message in (info.value.detail, decoded.value.detail):  # the input's label, never Pillow's file object
        assert "_io." not in message and " at 0x" not in message


def test_header_only_probe_does_not_decode():
    assert pictures.probe_picture(corpus.png_claiming(64, 64), decode=False).width == 64


# ----------------------------------------------------------------------------- the methods' image loading


def test_image_input_reports_and_decodes_the_displayed_picture():
    case = corpus.orientation_member(6)
    image = prepare_inputs("m", (IMAGE,), {IMAGE: case.data}).image
    assert (image.width, image.height) == case.displayed_size == (360, 480)
    assert image.array().shape == (480, 360, 3)
    assert corpus.mean_diff(image.rgb(), case.control) <= case.max_mean_diff
    assert images.probe_image(case.data, "image") == ("JPEG", 360, 480)
    assert isinstance(pytest.raises(InvalidInputError, images.decode_rgb, b"nope").value, MediaDecodeError)


@pytest.mark.parametrize(
    "case",
    [corpus.orientation_member(6), corpus.orientation_member(3, "PNG")]
    + [c for c in MODE_CASES if c.name in ("I16-png-gray16", "CMYK-jpeg-adobe", "RGBA-png", "P-png-trns")]
    + [c for c in ICC_CASES if c.name == "linear-rgb-png"],
    ids=lambda c: c.id,
)
def test_remote_models_get_what_a_browser_shows(case):
    """Originals that need a display rule are re-encoded, so providers cannot see them sideways or white."""
    sent = images.for_remote(case.data, pictures.probe_picture(case.data).format, *case.displayed_size)
    assert sent != case.data
    with Image.open(io.BytesIO(sent)) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == case.displayed_size
        assert pictures.exif_orientation(im) == 1
        assert corpus.mean_diff(im.convert("RGB"), case.control) <= case.max_mean_diff + 3.0


@pytest.mark.parametrize(
    "case", [c for c in MODE_CASES if c.name in ("L-png", "P-png", "RGB-jpeg")] + [corpus.orientation_member(1)], ids=lambda c: c.id
)
def test_remote_models_get_plain_originals_unchanged(case):
    assert images.for_remote(case.data, pictures.probe_picture(case.data).format, *case.displayed_size) is case.data


def test_max_image_pixels_is_one_number():
    assert images.MAX_IMAGE_PIXELS == pictures.MAX_IMAGE_PIXELS == 80_000_000


def test_limits_hold_when_probes_run_in_threads():
    """Probes run in worker threads: the Pillow-band bomb is refused every time, the good picture never."""
    from concurrent.futures import ThreadPoolExecutor

    bomb = corpus.png_claiming(9_500, 10_000)
    good = corpus.orientation_member(6).data

    def probe(data):
        try:
            return pictures.probe_picture(data, max_pixels=200_000_000).width
        except MediaDecodeError as exc:
            return exc.cause

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(probe, [bomb, good] * 16))
    assert results == ["too_many_pixels", 360] * 16


def test_only_pixels_shown_as_decoded_skip_the_copy_and_stay_usable():
    """decode_picture hands back Pillow's own decode, uncopied, only when nothing about it changes on screen."""
    plain = corpus.encode(Image.new("RGB", (8, 6), (10, 20, 30)), "PNG")
    keyed = io.BytesIO()
    Image.new("RGB", (8, 6), (0, 0, 0)).save(keyed, "PNG", transparency=(0, 0, 0))
    linear = corpus.encode(Image.new("RGB", (8, 8), (128, 128, 128)), "PNG", icc_profile=corpus.linear_rgb_profile())
    sideways = corpus.orientation_member(6, "PNG").data

    def shown_as_decoded(data: bytes) -> bool:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return pictures._displayed_as_decoded(im)

    assert shown_as_decoded(plain)
    assert not any(shown_as_decoded(data) for data in (keyed.getvalue(), linear, sideways))
    im = pictures.decode_picture(plain)
    assert im.getpixel((7, 5)) == (10, 20, 30)  # not closed when decode_picture returned
    assert pictures.decode_picture(keyed.getvalue()).getpixel((0, 0)) == (255, 255, 255)  # the key, on white
