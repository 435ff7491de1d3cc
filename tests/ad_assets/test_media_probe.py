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


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid PNG header announcing ``width`` x ``height`` pixels, with no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_header_without_pixels_is_corrupt(tmp_path: Path):
    """A few bytes that claim a big image are not an image: refused at acquisition."""
    with pytest.raises(MediaProbeError) as info:
        probe_image(_png_claiming(tmp_path / "empty.png", 5000, 10000))
    assert info.value.cause == "corrupt_media"


def test_pillow_bomb_limit_holds_when_ours_is_raised(tmp_path: Path):
    with pytest.raises(MediaProbeError) as info:
        probe_image(_png_claiming(tmp_path / "big.png", 9500, 10000), max_pixels=200_000_000)
    assert info.value.cause == "too_many_pixels" and "decompression-bomb limit" in info.value.detail


def test_acquisition_limit_matches_what_the_ai_methods_accept():
    from ad_assets.engine.media_probe import DEFAULT_MAX_PIXELS
    from ai_methods.images import MAX_IMAGE_PIXELS
    from resources.downloader import DownloaderResource

    assert DEFAULT_MAX_PIXELS == MAX_IMAGE_PIXELS == DownloaderResource.model_fields["max_pixels"].default


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", ("audio", "audio/mpeg", "mp3")),
        (b"\xff\xfb\x90\x64" + b"\x00" * 60, ("audio", "audio/mpeg", "mp3")),  # MPEG-1 layer III frame, 128 kb/s
        (b"\xff\xf1\x50\x80" + b"\x00" * 60, ("audio", "audio/aac", "aac")),  # ADTS
        (b"OggS\x00\x02" + b"\x00" * 58, ("audio", "audio/ogg", "ogg")),
        (b"fLaC\x00\x00\x00\x22", ("audio", "audio/flac", "flac")),
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", ("audio", "audio/wav", "wav")),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", ("audio", "audio/mp4", "m4a")),
        ((b"\x47" + b"\x1f" * 187) * 3, ("video", "video/mp2t", "ts")),
        (b"II*\x00\x08\x00\x00\x00", ("image", "image/tiff", "tif")),
        (b"MM\x00*\x00\x00\x00\x08", ("image", "image/tiff", "tif")),
    ],
)
def test_sniff_audio_streams_and_other_containers(head, expected):
    sniffed = sniff_media_type(head)
    assert sniffed is not None and (sniffed.media_type, sniffed.mime, sniffed.ext) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"BMW summer campaign",  # text starting with "BM" is not a bitmap
        b"\xff\xff\xff\xff" + b"\x00" * 60,  # reserved MPEG audio fields
        (b"\x47" + b"\x00" * 187) * 2 + b"\x00" * 188,  # two sync bytes are not a transport stream
    ],
)
def test_lookalike_bytes_are_not_media(head):
    assert sniff_media_type(head) is None


def test_sniff_tiff_and_bmp_written_by_pillow():
    for fmt, mime in (("TIFF", "image/tiff"), ("BMP", "image/bmp")):
        sniffed = sniff_media_type(encode_image(Image.new("RGB", (8, 8), (1, 2, 3)), fmt)[:64])
        assert sniffed is not None and (sniffed.media_type, sniffed.mime) == ("image", mime)


def test_an_audio_only_container_is_settled_as_audio_with_an_audio_name(tmp_path: Path):
    from ad_assets.engine.media_probe import probe_media

    import av

    path = tmp_path / "spot.mp4"
    source = tmp_path / "src.mp4"
    source.write_bytes(render_ad_video([Scene(("A",), (0, 0, 0), 1.0)]))
    # Keep only the AAC track: the audio stream alone remuxed into a new MP4.
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4") as out:
        audio_in = src.streams.audio[0]
        audio_out = out.add_stream_from_template(audio_in)
        for packet in src.demux(audio_in):
            if packet.dts is not None:
                packet.stream = audio_out
                out.mux(packet)
    sniffed = sniff_media_type(path.read_bytes()[:64])
    assert sniffed is not None and sniffed.media_type == "video"  # an MP4: the bytes alone cannot tell
    probe = probe_media(path, sniffed, max_pixels=10**6, max_duration_s=60)
    assert (probe.media_type, probe.mime, probe.ext) == ("audio", "audio/mp4", "m4a")
    assert probe.width is None and probe.duration_s == pytest.approx(1.0, abs=0.15)
