"""The sample ads as files, and a loopback HTTP server that serves them.

The site holds images with rendered ad text, videos with and without a spoken
track, an HTML page, and a redirect route, so a demo run shows every outcome.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

from ad_assets.demo.samples import SPOKEN_AD_WAV, Scene, encode_image, render_ad_image, render_ad_video

# (file name, text lines, background, accent)
_IMAGES = {
    "northwind-coffee": [
        ("espresso.png", ["FRESH COFFEE", "EVERY MORNING"], (250, 244, 232), (120, 70, 30)),
        ("latte.jpg", ["NEW OAT LATTE", "TRY IT TODAY"], (245, 235, 220), (170, 120, 80)),
        ("sale.png", ["SAVE 20% TODAY", "NORTHWIND COFFEE"], (255, 250, 240), (200, 40, 40)),
        ("beans.png", ["ETHIOPIAN BEANS", "SINGLE ORIGIN"], (235, 225, 205), (90, 60, 30)),
    ],
    "lumen-shoes": [
        ("runner.png", ["RUN FURTHER", "LUMEN AIR 2"], (230, 240, 255), (30, 90, 200)),
        ("trail.jpg", ["TRAIL READY", "GRIP THAT HOLDS"], (225, 240, 225), (40, 120, 60)),
        ("launch.png", ["LAUNCH DAY", "FREE SHIPPING"], (250, 250, 250), (20, 20, 20)),
    ],
}
_VIDEOS = {
    "northwind-coffee": [
        ("morning.mp4", [("FRESH COFFEE",), ("VISIT OUR STORE",), ("SAVE 20%",)], True),
    ],
    "lumen-shoes": [
        ("stride.mp4", [("RUN FURTHER",), ("LUMEN AIR 2",)], False),
    ],
}
_BACKGROUNDS = [(250, 240, 220), (30, 60, 120), (200, 60, 40), (40, 120, 60)]


@dataclass(frozen=True)
class SampleBrand:
    """A sample brand: its key and the paths (on the sample site) of its URLs."""

    brand: str
    paths: list[str]


def build_sample_site(root: Path) -> list[SampleBrand]:
    """Write the sample files under ``root`` (once) and return the brands' URL paths.

    Each brand's list also holds a redirect to one of its images, a duplicate of
    an image under another name, a page that is HTML, and a missing file, so
    the demo shows each outcome a real list has.
    """
    root.mkdir(parents=True, exist_ok=True)
    brands = []
    for brand, images in _IMAGES.items():
        folder = root / brand
        folder.mkdir(exist_ok=True)
        paths = []
        for name, lines, background, accent in images:
            target = folder / name
            if not target.exists():
                fmt = "JPEG" if name.endswith(".jpg") else "PNG"
                target.write_bytes(encode_image(render_ad_image(lines, background=background, accent=accent), fmt))
            paths.append(f"/{brand}/{name}")
        for name, scenes, with_audio in _VIDEOS[brand]:
            target = folder / name
            if not target.exists():
                spec = [Scene(tuple(lines), _BACKGROUNDS[i % 4], 2.0) for i, lines in enumerate(scenes)]
                target.write_bytes(render_ad_video(spec, audio_wav=SPOKEN_AD_WAV if with_audio else None))
            paths.append(f"/{brand}/{name}")
        (folder / "copy-of-first.png").write_bytes((folder / images[0][0]).read_bytes())
        (folder / "landing.html").write_text(f"<!doctype html><html><body><h1>{brand}</h1></body></html>")
        paths += [
            f"/redirect/{brand}/{images[-1][0]}",
            f"/{brand}/copy-of-first.png",
            f"/{brand}/landing.html",
            f"/{brand}/missing.png",
        ]
        brands.append(SampleBrand(brand, paths))
    return brands


class _SampleHandler(SimpleHTTPRequestHandler):
    """Static files, plus ``/redirect/<path>`` answering 302 to ``/<path>``."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # keep the demo's output readable
        pass


@contextmanager
def serve_sample_site(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_SampleHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="sample-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
