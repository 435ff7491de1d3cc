"""``local-lexical-v1``: 512-d hashed bag of words, word pairs and character trigrams.

Signed feature hashing (CRC-32 picks the slot and the sign, so the vector is
the same in every process), sublinear term frequency, common English words
down-weighted, L2-normalised. Good for "which item mentions these words"; it
has no notion of synonyms and lives in its own space (never compare it with
``local-visual-v1``).
"""

from __future__ import annotations

import math
import re
import unicodedata
import zlib
from collections import defaultdict
from typing import Any

SPACE = "local-lexical-v1"
MODEL_ID = "local-lexical-v1"
DIM = 512
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_WORD_W, _PAIR_W, _CHAR_W, _STOP_W = 1.0, 0.5, 0.25, 0.2
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have in is it its of on or our so that the this to was we with you your".split()
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def _features(words: list[str]) -> dict[str, float]:
    feats: dict[str, float] = defaultdict(float)
    for w in words:
        feats["w:" + w] += _STOP_W if w in STOPWORDS else _WORD_W
        padded = f"<{w}>"
        for i in range(len(padded) - 2):
            feats["c:" + padded[i : i + 3]] += _CHAR_W
    for a, b in zip(words, words[1:]):
        feats[f"p:{a} {b}"] += _PAIR_W
    return feats


def lexical_vector(text: str) -> Any:
    """The float32 unit vector of ``text`` (zeros if it has no word characters)."""
    import numpy as np

    vec = np.zeros(DIM, dtype=np.float64)
    for feature, weight in _features(tokens(text)).items():
        h = zlib.crc32(feature.encode("utf-8"))
        sign = 1.0 if (h >> 31) & 1 else -1.0
        vec[h % DIM] += sign * (1.0 + math.log(weight)) if weight >= 1.0 else sign * weight
    norm = float(np.linalg.norm(vec))
    return (vec / norm if norm > 0 else vec).astype(np.float32)
