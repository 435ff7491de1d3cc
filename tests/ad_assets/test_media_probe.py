"""The type of a download is decided by its bytes and every probe failure is a
per-URL cause, so these are checked on real encoded files."""

from pathlib import Path

import pytest
from PIL import Image

from ad_assets.demo.samples import Scene, encode_image, render_ad_image, render_ad_video
from ad_assets.engine.media_probe import (
    MediaProbeError,
    describe_unsupported,
    probe_image,
    probe_video,
    sniff_media_type,
)


@pytest.fixture(scope="module")
def video_bytes() -> bytes:
    return render_ad_video([Scene(("HELLO",), (200, 200, 200), 1.0), Scene(("WORLD",), (20, 20, 20), 1.0)])


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")]
)
def test_sniff_images(fmt, mime):
    data = encode_image(Image.new("RGB", (8, 8), (1, 2, 3)), fmt)
    sniffed = sniff_media_type(data[:64])
    assert sniffed is not None and sniffed.media_type == "image" and sniffed.mime == mime


def test_sniff_video(video_bytes):
    sniffed = sniff_media_type(video_bytes[:64])
    assert sniffed is not None and (sniffed.media_type, sniffed.ext) == ("video", "mp4")


@pytest.mark.parametrize(
    ("head", "says"),
    [
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page"),
        (b'{"error": "nope"}', "JSON"),
        (b"%PDF-1.7", "PDF"),
        (b"", "empty"),
    ],
)
def test_unsupported_bytes_are_described(head, says):
    assert sniff_media_type(head) is None
    assert says in describe_unsupported(head, "image/png")


def test_probe_image_and_video(tmp_path: Path, video_bytes):
    image = tmp_path / "a.png"
    image.write_bytes(encode_image(render_ad_image(["HI"], size=(300, 200))))
    assert (probe_image(image).width, probe_image(image).height) == (300, 200)
    video = tmp_path / "v.mp4"
    video.write_bytes(video_bytes)
    probe = probe_video(video)
    assert probe.width == 320 and probe.height == 240 and probe.has_audio is True
    assert probe.duration_s == pytest.approx(2.0, abs=0.15)


def test_video_without_audio(tmp_path: Path):
    video = tmp_path / "v.mp4"
    video.write_bytes(render_ad_video([Scene(("A",), (0, 0, 0), 1.0)], audio_wav=None))
    assert probe_video(video).has_audio is False


def test_pixel_bomb_is_refused(tmp_path: Path):
    image = tmp_path / "big.png"
    Image.new("1", (6000, 6000)).save(image)
    with pytest.raises(MediaProbeError) as info:
        probe_image(image, max_pixels=10_000_000)
    assert info.value.cause == "too_many_pixels"


@pytest.mark.parametrize("cut", [40, 400])
def test_truncated_files_are_corrupt(tmp_path: Path, video_bytes, cut):
    video = tmp_path / "cut.mp4"
    video.write_bytes(video_bytes[:cut])
    with pytest.raises(MediaProbeError) as info:
        probe_video(video)
    assert info.value.cause == "corrupt_media"
    image = tmp_path / "cut.png"
    image.write_bytes(encode_image(render_ad_image(["X"]))[:cut])
    with pytest.raises(MediaProbeError):
        probe_image(image)


def test_too_long_video_is_refused(tmp_path: Path, video_bytes):
    video = tmp_path / "v.mp4"
    video.write_bytes(video_bytes)
    with pytest.raises(MediaProbeError) as info:
        probe_video(video, max_duration_s=1.0)
    assert info.value.cause == "too_long"
