"""The methods that ship with ad-assets, registered through the ``ad_assets.methods`` entry point."""

from __future__ import annotations

from ai_methods.builtin.caption import Caption
from ai_methods.builtin.detect_faces import DetectFaces
from ai_methods.builtin.dominant_colors import DominantColors
from ai_methods.builtin.embeddings import EmbedImage, EmbedText
from ai_methods.builtin.labels import Labels
from ai_methods.builtin.ocr_text import OcrText
from ai_methods.builtin.summarize_brand import SummarizeBrand
from ai_methods.builtin.transcribe_speech import TranscribeSpeech

METHODS = [
    Caption(),
    Labels(),
    OcrText(),
    TranscribeSpeech(),
    EmbedImage(),
    EmbedText(),
    DetectFaces(),
    DominantColors(),
    SummarizeBrand(),
]

__all__ = [
    "METHODS",
    "Caption",
    "DetectFaces",
    "DominantColors",
    "EmbedImage",
    "EmbedText",
    "Labels",
    "OcrText",
    "SummarizeBrand",
    "TranscribeSpeech",
]
