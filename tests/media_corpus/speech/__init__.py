"""Spoken clips with their reference texts, and the word error rate of a transcript against them.

The clips are espeak-ng speech of ad-like sentences (``make_clips.py`` made
them at development time; the tests only read the committed files), plus the
demo's own spoken ad. Scoring follows the usual ASR practice: both sides are
normalised (case, punctuation, numbers and ``%`` spelt out) before jiwer
counts substitutions, deletions and insertions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import jiwer

HERE = Path(__file__).resolve().parent
DEMO_AD = HERE.parents[2] / "ad_assets" / "demo" / "spoken_ad.wav"
DEMO_AD_TEXT = "Fresh coffee every morning. Visit our store today and save twenty percent."

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


@dataclass(frozen=True)
class Clip:
    path: Path
    reference: str


def clips() -> list[Clip]:
    """Every committed spoken clip, the demo's ad first."""
    refs = json.loads((HERE / "references.json").read_text())
    return [Clip(DEMO_AD, DEMO_AD_TEXT)] + [Clip(HERE / name, r["text"]) for name, r in refs.items()]


def _number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    return str(n)


def normalise(text: str) -> str:
    """Lower case, ``20%`` → ``twenty percent``, numbers below 100 spelt out, punctuation dropped (apostrophes kept)."""
    text = text.casefold().replace("%", " percent ").replace("-", " ")
    text = re.sub(r"\d+", lambda m: f" {_number(int(m.group()))} ", text)
    text = re.sub(r"[^\w' ]+", " ", text)
    return " ".join(text.split())


def words(text: str) -> list[str]:
    return normalise(text).split()


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate: (substitutions + deletions + insertions) / reference words, over all pairs."""
    refs = [normalise(r) for r in references]
    hyps = [normalise(h) for h in hypotheses]
    # jiwer refuses an empty hypothesis string; a transcript that heard nothing deletes every word.
    hyps = [h if h else "<nothing>" for h in hyps]
    return float(jiwer.wer(refs, hyps))


def aligned_correct(reference: str, hypothesis_words: list[str]) -> list[bool]:
    """For each hypothesis word (as the engine gave it), whether the alignment with ``reference`` calls it right.

    A word that normalises to several (``20%`` → ``twenty percent``) is right when all of its parts are.
    """
    parts: list[tuple[int, str]] = [(i, p) for i, w in enumerate(hypothesis_words) for p in words(w)]
    verdict = [True] * len(hypothesis_words)
    for i, w in enumerate(hypothesis_words):
        if not words(w):
            verdict[i] = False
    if not parts:
        return verdict
    out = jiwer.process_words(normalise(reference), " ".join(p for _, p in parts))
    ok = [False] * len(parts)
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            for k in range(chunk.hyp_start_idx, chunk.hyp_end_idx):
                ok[k] = True
    for (i, _), good in zip(parts, ok):
        verdict[i] = verdict[i] and good
    return verdict
