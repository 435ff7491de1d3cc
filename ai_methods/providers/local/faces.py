"""Frontal face detection with OpenCV's bundled Haar cascade.

The cascade gives boxes, not calibrated probabilities, so local faces carry no
confidence. It finds frontal, upright faces of reasonable size; profiles and
faces under ~7 % of the picture's short side are missed. Needs
``opencv-python-headless`` 4.x: OpenCV 5 dropped the cascade classifier and its
data files from the main package.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_methods.errors import ProviderUnavailableError

CASCADE = "haarcascade_frontalface_default.xml"
# v2: detection on a 480 px short side with scale steps of 1.2 (was: 1024 px long side, steps of 1.1).
MODEL_ID = "opencv-haar-frontalface-default-v2"
# No face under MIN_FACE of the short side is looked for. The cascade was trained on 24x24 px
# windows (the <size> of haarcascade_frontalface_default.xml), so a copy whose short side is
# 24 / 0.05 = 480 px shows that smallest face at the cascade's own size. v1 searched a 1024 px
# copy at twice the time; its extra recall was for faces of 5-7 % (docs/ai_stage.md).
MIN_FACE = 0.05
WINDOW = 24
SHORT_SIDE = round(WINDOW / MIN_FACE)
# A long side bound too, so a 300x20000 strip costs what a square does.
MAX_SIDE = 1024
# Each pyramid level is 1/1.2 of the previous one. OpenCV's default is 1.1 and its Python
# face-detection tutorial uses 1.3; 1.2 halves 1.1's levels (and its time) and, measured on a
# face pasted at 12 sizes, still finds faces down to ~7 % of the short side (1.3: ~10 %).
SCALE_FACTOR = 1.2
MIN_NEIGHBORS = 5


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    width: int
    height: int


class FaceEngine:
    def __init__(self) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise ProviderUnavailableError(
                f"detect_faces on local needs OpenCV's Haar cascades, absent from opencv-python {cv2.__version__}; "
                "install opencv-python-headless>=4.10,<5"
            )
        path = Path(cv2.data.haarcascades) / CASCADE
        if not path.is_file():
            raise ProviderUnavailableError(f"detect_faces on local: {path} is missing; reinstall opencv-python-headless<5")
        self._cv2 = cv2
        self._path = str(path)
        self._cascade = cv2.CascadeClassifier(self._path)
        # A CascadeClassifier keeps per-call state, so one object must not detect in two threads at
        # once; a lock would leave the other worker threads (shared with decoding and request
        # building) waiting on it. Each thread gets its own copy (~7 ms to load, once per thread).
        self._per_thread = threading.local()
        self._per_thread.cascade = self._cascade

    def _thread_cascade(self) -> Any:
        cascade = getattr(self._per_thread, "cascade", None)
        if cascade is None:
            cascade = self._per_thread.cascade = self._cv2.CascadeClassifier(self._path)
        return cascade

    def detect(self, rgb: Any) -> list[FaceBox]:
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        scale = min(1.0, SHORT_SIDE / min(h, w), MAX_SIDE / max(h, w))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(WINDOW, int(min(gray.shape[:2]) * MIN_FACE))
        # detectMultiScale releases the GIL: the event loop runs while it works.
        found = self._thread_cascade().detectMultiScale(
            gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(min_side, min_side)
        )
        boxes = [FaceBox(int(x / scale), int(y / scale), int(fw / scale), int(fh / scale)) for (x, y, fw, fh) in found]
        return sorted(boxes, key=lambda b: (-b.width * b.height, b.x, b.y))
