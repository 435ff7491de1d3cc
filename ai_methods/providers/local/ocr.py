"""Offline OCR with rapidocr-onnxruntime (PP-OCRv4 models inside the wheel)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

MODEL_ID = "rapidocr-onnxruntime-1.4.4/PP-OCRv4"

Box = list[list[float]]  # four [x, y] corners clockwise from top-left, in pixels


@dataclass(frozen=True)
class OcrWord:
    text: str
    confidence: float
    box: Box


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float
    box: Box
    words: tuple[OcrWord, ...]


def _rect(points: list[list[float]]) -> Box:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _words_of(line_text: str, line_conf: float, line_box: Box, extra: list[Any]) -> tuple[OcrWord, ...]:
    """Group rapidocr's per-character boxes into words; split the line box by characters when absent."""
    chars_boxes = extra[0] if len(extra) > 0 else None
    chars = extra[1] if len(extra) > 1 else None
    confs = extra[2] if len(extra) > 2 else None
    words: list[OcrWord] = []
    if chars and chars_boxes and confs and len(chars) == len(chars_boxes) == len(confs):
        current: list[int] = []
        for i, ch in enumerate(list(chars) + [" "]):
            if ch.strip() and i < len(chars):
                current.append(i)
            elif current:
                text = "".join(chars[j] for j in current)
                pts = [p for j in current for p in chars_boxes[j]]
                conf = min(float(confs[j]) for j in current)
                words.append(OcrWord(text, round(conf, 4), _rect(pts)))
                current = []
        if "".join(w.text for w in words) == "".join(line_text.split()):
            return tuple(words)
    # Fallback: share the line's width among words in proportion to their characters.
    tokens = line_text.split()
    if not tokens:
        return ()
    (x0, y0), (x1, _), (_, y1) = line_box[0], line_box[1], line_box[2]
    total = max(1, len(line_text))
    out: list[OcrWord] = []
    pos = 0
    for token in tokens:
        start = line_text.index(token, pos)
        end = start + len(token)
        pos = end
        a = x0 + (x1 - x0) * start / total
        b = x0 + (x1 - x0) * end / total
        out.append(OcrWord(token, round(line_conf, 4), [[a, y0], [b, y0], [b, y1], [a, y1]]))
    return tuple(out)


class OcrEngine:
    """Loads the ONNX models once; serialises calls (the engine object is not documented as thread-safe)."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR()
        self._lock = threading.Lock()

    def read(self, rgb_image: Any) -> list[OcrLine]:
        """Lines of text in rapidocr's reading order (top to bottom, then left to right)."""
        with self._lock:
            result, _ = self._engine(rgb_image, return_word_box=True)
        lines: list[OcrLine] = []
        for entry in result or []:
            points, text, conf = entry[0], str(entry[1]).strip(), float(entry[2])
            if not text:
                continue
            box = [[float(x), float(y)] for x, y in points]
            lines.append(OcrLine(text, round(conf, 4), box, _words_of(text, conf, box, list(entry[3:]))))
        return lines
