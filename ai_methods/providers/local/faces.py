"""Frontal face detection with OpenCV's bundled Haar cascade.

The cascade gives boxes, not calibrated probabilities, so local faces carry no
confidence. It finds frontal, upright faces of reasonable size; profiles and
small faces are missed. Needs ``opencv-python-headless`` 4.x: OpenCV 5 dropped the
cascade classifier and its data files from the main package.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_methods.errors import ProviderUnavailableError

CASCADE = "haarcascade_frontalface_default.xml"
MODEL_ID = "opencv-haar-frontalface-default"
# Detection runs on a copy at most this big; boxes are scaled back to the original.
MAX_SIDE = 1024


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
        self._cascade = cv2.CascadeClassifier(str(path))
        self._lock = threading.Lock()

    def detect(self, rgb: Any) -> list[FaceBox]:
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        scale = min(1.0, MAX_SIDE / max(h, w))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(24, int(min(gray.shape[:2]) * 0.05))
        with self._lock:
            found = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        boxes = [FaceBox(int(x / scale), int(y / scale), int(fw / scale), int(fh / scale)) for (x, y, fw, fh) in found]
        return sorted(boxes, key=lambda b: (-b.width * b.height, b.x, b.y))
