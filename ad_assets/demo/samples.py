"""Generate sample ad media locally: images with rendered text and short videos.

Nothing is downloaded: images are drawn with Pillow, videos encoded with PyAV
(H.264 + AAC), and the spoken track is the small WAV committed beside this file
(espeak-ng saying "Fresh coffee every morning. Visit our store today and save
twenty percent.").
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SPOKEN_AD_WAV = Path(__file__).with_name("spoken_ad.wav")
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    # Pillow >= 10.1 ships a scalable default font.
    return ImageFont.load_default(size=size)


def render_ad_image(
    lines: list[str],
    *,
    size: tuple[int, int] = (640, 480),
    background: tuple[int, int, int] = (250, 245, 235),
    foreground: tuple[int, int, int] = (40, 30, 20),
    accent: tuple[int, int, int] | None = None,
) -> Image.Image:
    """An ad-like picture: a background, an optional accent band, and large text lines."""
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    width, height = size
    if accent is not None:
        draw.rectangle([0, int(height * 0.75), width, height], fill=accent)
    font_size = max(14, min(80, int(height * 0.6 / (len(lines) * 1.5))))
    font = _font(font_size)
    while font_size > 12 and max(draw.textlength(line, font=font) for line in lines) > width * 0.86:
        font_size -= 2
        font = _font(font_size)
    y = int(height * 0.1)
    for line in lines:
        draw.text((int(width * 0.07), y), line, font=font, fill=foreground)
        y += int(font_size * 1.5)
    return img


def encode_image(img: Image.Image, fmt: str = "PNG") -> bytes:
    """Encode a Pillow image to bytes (PNG or JPEG)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt.upper() == "JPEG" else {}))
    return buf.getvalue()


def read_wav_pcm(path: Path = SPOKEN_AD_WAV) -> tuple[np.ndarray, int]:
    """Mono s16 samples and the sample rate of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        if wav.getnchannels() > 1:
            pcm = pcm.reshape(-1, wav.getnchannels())[:, 0]
    return pcm, rate


@dataclass(frozen=True)
class Scene:
    """A span of a sample video: text lines on a background for ``seconds``."""

    lines: tuple[str, ...]
    background: tuple[int, int, int]
    seconds: float


def render_ad_video(
    scenes: list[Scene],
    *,
    size: tuple[int, int] = (320, 240),
    fps: int = 10,
    audio_wav: Path | None = SPOKEN_AD_WAV,
) -> bytes:
    """An MP4 (H.264, plus AAC audio when ``audio_wav`` is given) showing the scenes in turn.

    Within a scene the picture stays still except a small moving marker, so
    frame sampling sees near-duplicates inside a scene and changes between scenes.
    """
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = size
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"preset": "ultrafast", "tune": "stillimage"}
        astream = None
        if audio_wav is not None:
            pcm, rate = read_wav_pcm(audio_wav)
            astream = container.add_stream("aac", rate=rate)
            astream.layout = "mono"
        frame_index = 0
        for scene in scenes:
            base = render_ad_image(list(scene.lines), size=size, background=scene.background)
            for _ in range(max(1, round(scene.seconds * fps))):
                img = base.copy()
                x = 4 + (frame_index * 3) % (size[0] - 12)
                ImageDraw.Draw(img).rectangle([x, size[1] - 8, x + 6, size[1] - 2], fill=(200, 30, 30))
                frame = av.VideoFrame.from_image(img)
                frame.pts = frame_index
                frame.time_base = Fraction(1, fps)
                for packet in vstream.encode(frame):
                    container.mux(packet)
                frame_index += 1
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            total_s = frame_index / fps
            pcm = pcm[: int(total_s * rate)]
            chunk = 1024
            for start in range(0, len(pcm), chunk):
                piece = pcm[start : start + chunk]
                frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = rate
                frame.pts = start
                frame.time_base = Fraction(1, rate)
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return buf.getvalue()
