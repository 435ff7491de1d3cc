"""Hostile inputs, built in memory in milliseconds: compression bombs, pixel bombs,
videos that lie about their length, playlists that point elsewhere, and the
server routes that serve them dishonestly.

Everything here is small on the wire and in this process; the harm is in what
a naive reader would do with it (inflate 1 GiB, allocate 4 G pixels, decode
for 28 hours, fetch a URL).
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

from tests.support.loopback_http import Request, Route, _Responder

MiB = 2**20


# -- compression bombs ----------------------------------------------------------------------
def _zero_blocks(mib: int) -> tuple[bytes, bytes]:
    """Raw deflate of ``mib`` MiB of zeros without compressing them all: after a full flush each
    1 MiB block compresses to the same ~1 KB, so the stream is one block repeated."""
    block = bytes(MiB)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    steady = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    return first + steady * (mib - 1), z.flush()


def gzip_bomb(mib: int = 1024) -> bytes:
    """A valid gzip stream of ``mib`` MiB of zeros, about ``mib`` KB long (1 GiB in ~1 MiB)."""
    body, tail = _zero_blocks(mib)
    crc = 0
    block = bytes(MiB)
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + body + tail + struct.pack("<II", crc, (mib * MiB) & 0xFFFFFFFF)


def zlib_bomb(mib: int = 1024) -> bytes:
    """``Content-Encoding: deflate`` as the RFC means it: zlib-wrapped."""
    body, tail = _zero_blocks(mib)
    adler = 1
    block = bytes(MiB)
    for _ in range(mib):
        adler = zlib.adler32(block, adler)
    return b"\x78\xda" + body + tail + struct.pack(">I", adler)


def raw_deflate_bomb(mib: int = 1024) -> bytes:
    """``Content-Encoding: deflate`` as many servers send it: raw, no zlib wrapper."""
    body, tail = _zero_blocks(mib)
    return body + tail


# -- pixel bombs ----------------------------------------------------------------------------
def png_claiming(width: int, height: int) -> bytes:
    """A well-formed 1-bit PNG header claiming ``width`` x ``height`` with no pixel data (65 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def gif_claiming(width: int, height: int) -> bytes:
    """An 8x8 GIF whose screen and frame descriptors claim ``width`` x ``height``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", (8, 8)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    struct.pack_into("<HH", data, 6, width, height)  # logical screen
    descriptor = data.index(b"\x2c", 13)
    struct.pack_into("<HH", data, descriptor + 5, width, height)
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """An 8x8 JPEG whose SOF0 frame header claims ``width`` x ``height``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


# -- videos that lie ------------------------------------------------------------------------
def long_sparse_mp4(seconds: int) -> bytes:
    """A ~1.5 KB H.264 MP4 with two frames, at 0 s and at ``seconds``: its duration is real, and absurd."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1)
        for pts in (0, seconds):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


# -- playlists and manifests that point at a URL ----------------------------------------------
def hls_playlist(segment_url: str) -> bytes:
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\n{segment_url}\n#EXT-X-ENDLIST\n"
    ).encode()


def concat_list(segment_url: str) -> bytes:
    return f"ffconcat version 1.0\nfile '{segment_url}'\n".encode()


def dash_manifest(segment_url: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"'
        ' profiles="urn:mpeg:dash:profile:isoff-on-demand:2011" mediaPresentationDuration="PT2S" minBufferTime="PT1S">'
        '<Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="1000" width="64" height="48"'
        f' codecs="avc1.42c01e"><BaseURL>{segment_url}</BaseURL><SegmentBase indexRange="0-10"/></Representation>'
        "</AdaptationSet></Period></MPD>\n"
    ).encode()


def ftyp_polyglot(payload: bytes) -> bytes:
    """An ``ftyp`` box (so the sniffer says MP4) followed by ``payload``."""
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    return ftyp + payload


# -- dishonest server routes ----------------------------------------------------------------
@dataclass(frozen=True)
class LyingLength(Route):
    """Declares ``declared`` bytes but sends ``body`` (longer or shorter); keeps the connection open."""

    declared: int
    body: bytes
    content_type: str = "image/png"

    async def respond(self, request: Request, out: _Responder) -> None:
        if len(self.body) < self.declared:
            out.close_after = True  # nothing more is coming: hang up, as a crashed origin would
        await out.head(200, (("Content-Type", self.content_type),), content_length=self.declared)
        await out.send(self.body)


@dataclass(frozen=True)
class EndlessHeaders(Route):
    """A 200 status line, then one short header line every ``interval_s``, forever (slowloris, reversed)."""

    interval_s: float = 0.02

    async def respond(self, request: Request, out: _Responder) -> None:
        out.close_after = True
        await out.send(b"HTTP/1.1 200 OK\r\n")
        n = 0
        while True:  # ends when the client hangs up (the server then cancels this handler)
            n += 1
            await out.send(b"X-Pad-%d: x\r\n" % n)
            await asyncio.sleep(self.interval_s)


@dataclass(frozen=True)
class EndlessBody(Route):
    """Headers without a length, then zeros as fast as the socket takes them, forever."""

    chunk: int = 256 * 1024
    content_type: str = "video/mp4"

    async def respond(self, request: Request, out: _Responder) -> None:
        out.close_after = True  # close-delimited: the body "ends" only when the server hangs up
        await out.head(200, (("Content-Type", self.content_type),), content_length=None)
        block = bytes(self.chunk)
        while True:
            await out.send(block)
