"""Synthetic ``BrandCatalog`` objects: every table filled, vectors seeded, sizes chosen by the test."""

from __future__ import annotations

import hashlib

import numpy as np

from resources.brand_catalog import (
    AnalysisRow,
    BrandCatalog,
    FrameRow,
    MediaItemRow,
    SegmentRow,
    SummaryRow,
    VectorRow,
)

VISUAL, LEXICAL = "test-visual-v1", "test-lexical-v1"


def sha_of(brand: str, name: str) -> str:
    """A stable fake content hash for ``name`` of ``brand``."""
    return hashlib.sha256(f"{brand}/{name}".encode()).hexdigest()


def _vector(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def synthetic_catalog(
    brand: str = "acme",
    *,
    images: int = 2,
    videos: int = 1,
    frames_per_video: int = 3,
    segments_per_video: int = 2,
    dim: int = 16,
    seed: int = 0,
    tag: str = "",
) -> BrandCatalog:
    """A brand with images (image + text vectors), videos (per frame: image + text vectors; transcript segments).

    ``tag`` changes the text content (and so the content hash) without changing the shape.
    """
    rng = np.random.default_rng(seed)
    items, frames, segments, analyses, vectors = [], [], [], [], []

    def vec(sha: str, kind: str, **where) -> None:
        space = VISUAL if kind == "image" else LEXICAL
        vectors.append(VectorRow(sha, kind, space, "embed_image" if kind == "image" else "embed_text",
                                 _vector(rng, dim), provider="fake", model="fake", version="1", **where))  # fmt: skip

    for i in range(images):
        sha = sha_of(brand, f"image{i}")
        items.append(MediaItemRow(sha, "image", f"http://cdn.test/{brand}/{i}.png", f"media/{sha[:2]}/{sha}.png",
                                  f"/store/media/{sha[:2]}/{sha}.png", caption=f"image {i}{tag}",
                                  ocr_text=f"SALE {i}{tag}", width=64, height=48, mime="image/png", bytes=100))  # fmt: skip
        analyses.append(AnalysisRow(sha, "ocr_text", {"text": f"SALE {i}{tag}"}, version="1", provider="fake"))
        vec(sha, "image")
        vec(sha, "text", text=f"image {i}{tag}\nSALE {i}{tag}")
    for j in range(videos):
        sha = sha_of(brand, f"video{j}")
        duration = float(frames_per_video)
        items.append(MediaItemRow(sha, "video", f"http://cdn.test/{brand}/{j}.mp4", f"media/{sha[:2]}/{sha}.mp4",
                                  f"/store/media/{sha[:2]}/{sha}.mp4", duration_s=duration, has_audio=True,
                                  frames_sampled=frames_per_video, frames_kept=frames_per_video,
                                  transcript_text=f"spoken words{tag}"))  # fmt: skip
        for f in range(frames_per_video):
            frames.append(FrameRow(sha, f * 10, float(f), f"frame {f}{tag}", f"WORDS {f}{tag}"))
            analyses.append(AnalysisRow(sha, "caption", {"caption": f"frame {f}{tag}"}, frame_index=f * 10, version="1"))
            vec(sha, "image", frame_index=f * 10, t_s=float(f))
            vec(sha, "text", frame_index=f * 10, t_s=float(f), text=f"frame {f}{tag}")
        step = duration / max(1, segments_per_video)
        for s in range(segments_per_video):
            start, end = s * step, (s + 1) * step
            segments.append(SegmentRow(sha, s, start, end, f"segment {s}{tag}", [{"text": "segment", "start": start}]))
            vec(sha, "transcript", segment_index=s, t_s=start, t_end_s=end, text=f"segment {s}{tag}")
        analyses.append(AnalysisRow(sha, "transcribe_speech", {"text": f"spoken words{tag}"}, version="1"))
    summary = SummaryRow(items=len(items), summary={"themes": [f"sale{tag}"]}, duplicate_groups=[], outliers=[])
    return BrandCatalog(brand, tuple(items), tuple(frames), tuple(segments), tuple(analyses), summary, tuple(vectors))
