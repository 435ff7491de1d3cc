"""The score that decides what is a hit: pure arithmetic, so every rule is pinned here with small numbers.

Kinds from public bug reports of hybrid search: fused scores that saturate
at 1.0 for everything (no order left), a rank-only fusion that cannot say
"no good match", a certain single-list match (a rare word) drowned by
mediocre matches of both lists, and unrelated pictures scoring high
because a space's cosines start high.
"""

from __future__ import annotations

import pytest

from ad_assets.search_ranking import (
    DEFAULT_MIN_SCORE,
    IMAGE,
    PHRASE_EVIDENCE,
    TEXT,
    UnitEvidence,
    order_key,
    similarity_evidence,
    words_evidence,
)


@pytest.mark.parametrize(
    ("space", "cosine", "expected"),
    [("local-visual-v1", 0.5, 0.0), ("local-visual-v1", 0.3, 0.0), ("local-visual-v1", 1.0, 1.0),
     ("local-visual-v1", 0.75, 0.5), ("local-lexical-v1", 0.1, 0.0), ("titan-mm-v1", 0.4, 0.4),
     ("titan-mm-v1", -0.3, 0.0), ("titan-mm-v1", 1.0000001, 1.0)],
)  # fmt: skip
def test_similarity_is_rescaled_from_the_spaces_floor(space, cosine, expected):
    assert similarity_evidence(space, cosine) == pytest.approx(expected)


def test_words_evidence_grows_with_the_share_found_and_the_phrase_tops_it():
    assert words_evidence(0, 2, False) == 0.0 == words_evidence(1, 0, False)
    assert words_evidence(1, 2, False) < words_evidence(2, 2, False) < words_evidence(2, 2, True) == PHRASE_EVIDENCE


def _unit(words=None, text=None, image=None, rank=1) -> UnitEvidence:
    unit = UnitEvidence()
    if words:
        unit.add_words(*words, rank=rank)
    if text is not None:
        unit.add_similarity(TEXT, "titan-mm-v1", text, rank)
    if image is not None:
        unit.add_similarity(IMAGE, "titan-mm-v1", image, rank)
    return unit


def test_text_and_image_parts_both_count():
    both = _unit(text=0.5, image=0.5)

    assert both.score == pytest.approx(0.75)
    assert both.score > _unit(text=0.5).score == _unit(image=0.5).score == 0.5
    assert both.matched_by == ["text-vector", "image-vector"]


def test_scores_do_not_saturate_phrase_matches_differ_by_their_other_evidence():
    plain, also_looks_alike = _unit(words=(2, 2, True)), _unit(words=(2, 2, True), image=0.6)

    assert plain.score == pytest.approx(0.9) and also_looks_alike.score == pytest.approx(0.96)
    assert also_looks_alike.score < 1.0


def test_an_exact_phrase_ranks_first_even_below_a_strong_meaning_match():
    phrase, meaning = _unit(words=(2, 2, True)), _unit(text=0.97)

    assert meaning.score > phrase.score
    assert sorted([(meaning, 1), (phrase, 2)], key=lambda u: order_key(*u))[0][0] is phrase


def test_a_rare_word_found_by_text_alone_beats_weak_matches_of_both_lists():
    rare = _unit(words=(1, 1, True), rank=1)
    mediocre = _unit(words=(1, 3, False), text=0.3, rank=40)

    assert rare.score > mediocre.score and rare.score >= DEFAULT_MIN_SCORE
    assert order_key(rare, 2) < order_key(mediocre, 1)


def test_reciprocal_rank_fusion_breaks_ties_of_equal_scores():
    early, late = _unit(words=(1, 1, True), rank=1), _unit(words=(1, 1, True), rank=7)

    assert early.score == late.score and early.rrf > late.rrf
    assert order_key(early, 9) < order_key(late, 1)


def test_nothing_found_scores_zero_below_the_default_threshold():
    assert _unit().score == 0.0 < DEFAULT_MIN_SCORE and _unit(text=0.05).score < DEFAULT_MIN_SCORE
