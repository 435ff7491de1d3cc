"""One calibrated score per hit from word matches and vector similarities. Pure: no database, no I/O.

A hit is a *unit* of an ad: an image, a kept video frame, or a transcript
segment. The query's parts each give it evidence in [0, 1]:

- **text part**: the best of its *words* (Postgres full-text search over the
  OCR, model captions and transcripts: ``PHRASE_EVIDENCE`` when the words
  occur side by side in order, else ``WORDS_EVIDENCE`` × the share of query
  words found) and its *similarity* (cosine of the text query's vector
  against the unit's vectors, rescaled from the space's floor);
- **image part**: the similarity of the query image's vector to the unit's.

Word matches and a lexical vector measure the same thing (shared words), so
within a part the best one counts; the parts are independent, so they
combine as a probabilistic OR: ``1 - (1 - text)(1 - image)``. A unit that
matches both the words and the picture of a query ranks above one matching
either.

Why not rank by reciprocal rank fusion alone: RRF sums ``1/(k + rank)`` over
the lists, so it orders well but gives no absolute figure: the best of ten
unrelated items still gets the top RRF score, and nothing could say "no
good match". The calibrated score decides *whether* a hit counts and its
order; RRF over the same lists (words, each query vector) breaks ties, e.g.
among many exact-phrase matches. An exact phrase ranks first whatever the
scores.

Floors: the cosine two *unrelated* items typically reach in a space. Local
visual descriptors of any two ads share layout and colour statistics, so
their cosines start high; they are rescaled so that the floor maps to 0 and
1 stays 1. Measured on the demo and the test samples (figures in
docs/search.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Evidence of the words alone: an exact phrase, or all words found, scattered.
PHRASE_EVIDENCE = 0.9
WORDS_EVIDENCE = 0.8
RRF_K = 60
# Below this the best hit is "no good match" (calibrated: docs/search.md).
DEFAULT_MIN_SCORE = 0.3
# Cosine of unrelated items per space family (prefix of the space name); others use DEFAULT_FLOOR.
SIMILARITY_FLOORS = {"local-visual": 0.5, "local-lexical": 0.1}
DEFAULT_FLOOR = 0.0
TEXT, IMAGE = "text", "image"


def similarity_floor(space: str) -> float:
    """The cosine below which ``space``'s vectors are no evidence of a match."""
    for prefix, floor in SIMILARITY_FLOORS.items():
        if space.startswith(prefix):
            return floor
    return DEFAULT_FLOOR


def similarity_evidence(space: str, cosine: float) -> float:
    """``cosine`` rescaled to [0, 1] from the space's floor (at or below it: 0; 1 stays 1)."""
    floor = similarity_floor(space)
    return min(1.0, max(0.0, (float(cosine) - floor) / (1.0 - floor)))


def words_evidence(found: int, wanted: int, phrase: bool) -> float:
    """Evidence of a full-text match: the phrase in order, else the share of query words found."""
    if wanted <= 0 or found <= 0:
        return 0.0
    if phrase:
        return PHRASE_EVIDENCE
    return WORDS_EVIDENCE * min(1.0, found / wanted)


@dataclass
class UnitEvidence:
    """Everything one unit got from the query; ``score`` and ``rrf`` are derived from it."""

    words: float = 0.0
    phrase: bool = False
    words_found: int = 0
    words_wanted: int = 0
    similarity: dict[str, float] = field(default_factory=dict)  # query part -> best cosine
    evidence: dict[str, float] = field(default_factory=dict)  # query part -> best rescaled similarity
    ranks: list[int] = field(default_factory=list)  # 1-based rank in each list it appeared in

    def add_words(self, found: int, wanted: int, phrase: bool, rank: int) -> None:
        """Record a full-text match at ``rank`` in the words list."""
        value = words_evidence(found, wanted, phrase)
        if value >= self.words:
            self.words, self.phrase, self.words_found, self.words_wanted = value, phrase, found, wanted
        self.ranks.append(rank)

    def add_similarity(self, part: str, space: str, cosine: float, rank: int) -> None:
        """Record a vector hit of the query's ``part`` (``text`` or ``image``) at ``rank`` in its list."""
        if cosine > self.similarity.get(part, float("-inf")):
            self.similarity[part] = float(cosine)
        self.evidence[part] = max(self.evidence.get(part, 0.0), similarity_evidence(space, cosine))
        self.ranks.append(rank)

    @property
    def score(self) -> float:
        """The calibrated score in [0, 1]: per part the best evidence, parts combined by probabilistic OR."""
        text = max(self.words, self.evidence.get(TEXT, 0.0))
        image = self.evidence.get(IMAGE, 0.0)
        return 1.0 - (1.0 - text) * (1.0 - image)

    @property
    def rrf(self) -> float:
        """Reciprocal rank fusion over the lists the unit appeared in."""
        return sum(1.0 / (RRF_K + rank) for rank in self.ranks)

    @property
    def matched_by(self) -> list[str]:
        """How the unit matched: ``phrase`` or ``words`` (full text), ``text-vector``, ``image-vector``."""
        out = []
        if self.words_found:
            out.append("phrase" if self.phrase else "words")
        out += [f"{part}-vector" for part in (TEXT, IMAGE) if part in self.similarity]
        return out


def order_key(evidence: UnitEvidence, tie: int) -> tuple:
    """Sort key, best first: exact phrase, then score, then RRF, then ``tie`` (a stable id)."""
    return (not evidence.phrase, -round(evidence.score, 9), -evidence.rrf, tie)
