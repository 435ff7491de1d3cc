"""``summarize_brand``: one brand's creatives as a whole: themes, messages, calls to action, style, tone.

Input: ``results=``, a list with one JSON object per media item. In an item,
each key named after a method holds that method's output, or a whole
``MethodResult.as_dict()`` (with ``"output"``); a list under ``"analyses"``
of ``MethodResult`` dicts works too. Other keys (``item_id``, ``url``,
``media_type``) are context. Example::

    [{"item_id": "a1", "ocr_text": {...}, "dominant_colors": {...}, "transcribe_speech": {...}},
     {"item_id": "b2", "caption": {"method": "caption", "output": {...}, ...}}]
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, Field

from ai_methods.builtin import fake_data
from ai_methods.builtin.summary_chunks import draft_every_item
from ai_methods.inputs import RESULTS, Inputs
from ai_methods.placement import BRAND, Target
from ai_methods.method import AIMethod, CallContext
from ai_methods.providers.local.lexical import STOPWORDS
from ai_methods.usage import Usage

MAX_DIGEST_CHARS = 60_000  # digest characters one remote call reads
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_CTA = re.compile(
    r"\b(shop|buy|order|visit|call|book|sign up|subscribe|download|get|try|save|join|learn more|discover|"
    r"register|apply|claim|find out|reserve|donate|start|follow|contact|see more|watch)\b",
    re.IGNORECASE,
)
_URGENCY = ("today", "now", "limited", "hurry", "last chance", "only", "ends", "soon", "don't miss")
_OFFER = re.compile(r"(\d+\s?%|[$€£]\s?\d|\bfree\b|\boff\b|\bsale\b|\bdiscount\b|\bdeal\b)", re.IGNORECASE)
_EXTRA_STOP = STOPWORDS | frozenset("all are can get more new now not off one out see this will who".split())

# Transcript words are quoted (and so can become themes) only at or above a confidence
# measured to be right: per engine, the lowest threshold at which at least QUOTE_PRECISION
# of the words above it were right on the committed spoken clips (tests/media_corpus/speech;
# tests/ai_methods/test_speech_quality.py measures it again on every run).
# faster-whisper tiny.en int8 (with its ad prompt): at 0.60, 65 of 68 words right (95.6 %);
# at 0.5, 68 of 72 (94.4 %).
# pocketsphinx: no threshold reaches it (at 0.95, 4 of 5 right; at 0.8, 15 of 25), so
# None: its words are never quoted nor made themes.
# Engines not listed (remote transcription services, the fake provider, transcripts
# without words) are quoted as given: their accuracy is their service's to state.
QUOTE_PRECISION = 0.95
QUOTE_CONFIDENCE: dict[str, float | None] = {"faster-whisper": 0.60, "pocketsphinx": None}
MIN_QUOTED_WORDS = 2
GAP = "…"


class SummaryOutput(BaseModel):
    themes: list[str] = Field(description="recurring subjects of the brand's ads")
    key_messages: list[str]
    calls_to_action: list[str]
    visual_style: str = Field(min_length=1)
    tone: str = Field(min_length=1)
    item_count: int = Field(ge=1)
    basis: Literal["model", "measured", "fake"]


class _Draft(BaseModel):
    themes: list[str] = Field(default_factory=list, description="3-6 recurring themes, a few words each")
    key_messages: list[str] = Field(
        default_factory=list, description="the main claims or messages, quoted or closely paraphrased"
    )
    calls_to_action: list[str] = Field(default_factory=list, description="what viewers are asked to do, as written")
    visual_style: str = Field(description="one or two sentences on the visual style")
    tone: str = Field(description="a few words on the tone of voice")


@dataclass
class ItemSignals:
    """What one item's earlier results say, gathered from whichever methods ran."""

    item_id: str
    lines: list[str] = field(default_factory=list)  # on-image text
    speech: str = ""
    captions: list[str] = field(default_factory=list)  # from vision models only
    colours: list[tuple[str, float]] = field(default_factory=list)
    faces: int = 0
    objects: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return self.lines + ([self.speech] if self.speech else [])


def outputs_of(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Method name → output for one item, from any of the accepted shapes."""
    found: dict[str, dict[str, Any]] = {}
    entries: list[tuple[str, Any]] = list(item.items())
    for entry in item.get("analyses") or []:
        if isinstance(entry, dict) and "method" in entry:
            entries.append((entry["method"], entry))
    if "method" in item and "output" in item:
        entries.append((item["method"], item))
    for key, value in entries:
        if not isinstance(value, dict):
            continue
        if isinstance(value.get("output"), dict):
            found[str(value.get("method", key))] = value["output"]
        else:
            found[key] = value
    return found


def item_signals(index: int, item: dict[str, Any]) -> ItemSignals:
    out = outputs_of(item)
    s = ItemSignals(item_id=str(item.get("item_id") or item.get("id") or index))
    ocr = out.get("ocr_text", {})
    s.lines = [str(ln.get("text", "")).strip() for ln in ocr.get("lines", []) if str(ln.get("text", "")).strip()]
    if not s.lines and isinstance(ocr.get("text"), str):
        s.lines = [t.strip() for t in ocr["text"].splitlines() if t.strip()]
    s.speech = spoken_quote(out.get("transcribe_speech", {}))
    cap = out.get("caption", {})
    if cap.get("basis") == "model" and cap.get("caption"):
        s.captions.append(str(cap["caption"]))
    s.colours = [
        (str(c.get("name")), float(c.get("share", 0))) for c in out.get("dominant_colors", {}).get("colors", [])
    ]
    s.faces = int(out.get("detect_faces", {}).get("count", 0) or 0)
    labels = out.get("labels", {})
    if labels.get("basis") == "model":
        s.objects = [str(o.get("name")) for o in labels.get("objects", []) if o.get("name")]
    return s


def spoken_quote(transcript: dict[str, Any]) -> str:
    """What of a ``transcribe_speech`` output may be quoted: the words heard with a justified confidence.

    Words below the engine's ``QUOTE_CONFIDENCE`` become one ``…`` per run of
    them; fewer than ``MIN_QUOTED_WORDS`` confident words quote nothing. An
    engine without a table entry is quoted as given (see ``QUOTE_CONFIDENCE``).
    """
    text = str(transcript.get("text", "")).strip()
    engine = transcript.get("engine")
    words = transcript.get("words")
    if engine not in QUOTE_CONFIDENCE or not isinstance(words, list):
        return text
    threshold = QUOTE_CONFIDENCE[engine]
    if threshold is None:
        return ""
    parts: list[str] = []
    kept = 0
    for w in words:
        if not isinstance(w, dict):
            continue
        if float(w.get("confidence") or 0.0) >= threshold:
            parts.append(str(w.get("text", "")).strip())
            kept += 1
        elif not parts or parts[-1] != GAP:
            parts.append(GAP)
    return " ".join(p for p in parts if p) if kept >= MIN_QUOTED_WORDS else ""


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def measured_summary(items: list[ItemSignals]) -> SummaryOutput:
    """An extractive summary: only words, lines and measurements found in the items' results."""
    n = len(items)
    # Themes: words found in the most items (document frequency), then overall frequency.
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for it in items:
        words = [w.casefold() for t in it.texts + it.captions + it.objects for w in _WORD.findall(t)]
        words = [w for w in words if w not in _EXTRA_STOP]
        tf.update(words)
        df.update(set(words))
    ranked = sorted(df, key=lambda w: (-df[w], -tf[w], w))[:6]
    themes = [f"{w} ({df[w]} of {n} items)" for w in ranked]

    # Messages: distinct on-image lines and transcripts, most widely repeated first.
    line_items: dict[str, set[str]] = {}
    original: dict[str, str] = {}
    for it in items:
        for line in it.lines + ([it.speech[:160]] if it.speech else []):
            key = _norm(line)
            if len(key) < 4:
                continue
            line_items.setdefault(key, set()).add(it.item_id)
            original.setdefault(key, line)
    ordered = sorted(line_items, key=lambda k: (-len(line_items[k]), -len(k), k))
    key_messages = [original[k] for k in ordered[:5]]
    ctas = [original[k] for k in ordered if _CTA.search(original[k])][:5]

    # Visual style: the palette and the presence of text and faces, as counted.
    shares: Counter[str] = Counter()
    with_colours = 0
    for it in items:
        if it.colours:
            with_colours += 1
            for name, share in it.colours:
                shares[name] += share
    parts = []
    if with_colours:
        palette = ", ".join(f"{name} ({share / with_colours:.0%})" for name, share in shares.most_common(4))
        parts.append(f"Palette across {with_colours} item(s): {palette}.")
    parts.append(f"On-image text in {sum(1 for it in items if it.lines)} of {n} items.")
    parts.append(f"Faces detected in {sum(1 for it in items if it.faces)} of {n} items.")
    visual_style = " ".join(parts)

    # Tone: countable cues in the words, stated as counts.
    texted = [it for it in items if it.texts]
    if not texted:
        tone = "Not assessed: no on-image text or speech in the results."
    else:
        joined = [" ".join(it.texts) for it in texted]
        urgency = sorted({u for t in joined for u in _URGENCY if re.search(rf"\b{re.escape(u)}\b", t, re.IGNORECASE)})
        urgent_items = sum(
            1 for t in joined if any(re.search(rf"\b{re.escape(u)}\b", t, re.IGNORECASE) for u in _URGENCY)
        )
        offers = sum(1 for t in joined if _OFFER.search(t))
        letters = [c for t in (ln for it in texted for ln in it.lines) for c in t if c.isalpha()]
        upper = sum(1 for c in letters if c.isupper()) / len(letters) if letters else 0.0
        cues = [
            f"urgency words ({', '.join(urgency)}) in {urgent_items} of {len(texted)} items"
            if urgency
            else "no urgency words"
        ]
        cues.append(f"prices or offers in {offers} of {len(texted)} items")
        if letters:
            cues.append("on-image text mostly upper case" if upper > 0.6 else "on-image text mostly mixed case")
        exclaim = sum(t.count("!") for t in joined)
        if exclaim:
            cues.append(f"{exclaim} exclamation mark(s)")
        tone = "Measured cues: " + "; ".join(cues) + "."
    return SummaryOutput(
        themes=themes,
        key_messages=key_messages,
        calls_to_action=ctas,
        visual_style=visual_style,
        tone=tone,
        item_count=n,
        basis="measured",
    )


def digest_row(it: ItemSignals) -> str:
    """One item's signals as a compact JSON line for a chat model."""
    return json.dumps(
        {
            "item": it.item_id,
            "text": it.lines[:12],
            "speech": it.speech[:600],
            "captions": it.captions[:2],
            "objects": it.objects[:10],
            "colours": [name for name, _ in it.colours[:4]],
            "faces": it.faces,
        },
        ensure_ascii=False,
    )


class SummarizeBrand(AIMethod):
    """Set-level summary of all item results of one brand: themes, key messages, calls to action,
    visual style and tone.

    Local: extractive: themes are the words found in most items, messages and
    calls to action are on-image lines and transcripts as written, style and
    tone are counts of measured cues. Transcript words are used only at a
    confidence measured to be right 95 % of the time for the engine that heard
    them (``QUOTE_CONFIDENCE``); the rest show as ``…``. Remote: a chat model
    reads a digest of the items' results (no images); past one call's size,
    summaries of chunks merged, so every item is read (``summary_chunks``).
    """

    name = "summarize_brand"
    # 2: remote providers read every item (chunk summaries merged, not the first 60,000 characters);
    # local quotes transcript words only at a measured confidence.
    version = "2"
    accepts = (RESULTS,)
    applies_to = BRAND
    needs = ("ocr_text", "caption", "labels", "detect_faces", "dominant_colors", "transcribe_speech")
    output_schema = SummaryOutput
    providers = ("local", "fake", "bedrock", "openai")
    cost_unit = "1k_tokens"
    local_model = "local-extractive-summary-v2"

    def pipeline_inputs(self, target: Target) -> dict[str, Any] | None:
        items = fold_items(target.items)
        return {"results": items} if items else None

    async def compute(self, inputs: Inputs, ctx: CallContext) -> SummaryOutput:
        results = list(inputs.results or ())
        items = [item_signals(i, item) for i, item in enumerate(results)]
        if ctx.kind == "local":
            ctx.add_usage(Usage(requests=1))
            return measured_summary(items)
        if ctx.kind == "fake":
            await ctx.fake.answer(self.name)
            rng = ctx.rng()
            return SummaryOutput(
                themes=fake_data.pick(rng, fake_data.THEMES, 2, 4),
                key_messages=fake_data.pick(rng, fake_data.PHRASES, 1, 3),
                calls_to_action=fake_data.pick(rng, fake_data.CTAS, 1, 2),
                visual_style=rng.choice(fake_data.STYLES),
                tone=rng.choice(fake_data.TONES),
                item_count=len(items),
                basis="fake",
            )
        draft = await remote_draft(ctx, items)
        return SummaryOutput(**draft.model_dump(), item_count=len(items), basis="model")


_ASK = (
    "recurring themes, key messages, calls to action, visual style and tone. Base every point on the data; do not "
    "invent products or claims."
)


async def remote_draft(ctx: CallContext, items: list[ItemSignals]) -> _Draft:
    """The chat model's draft over every item: one call when the digest fits, else chunk summaries merged."""
    n = len(items)
    return await draft_every_item(
        ctx, _Draft, [digest_row(it) for it in items],
        system="You are a brand strategist summarising one brand's advertising from analysis results.",
        whole_prompt=lambda rows: (
            f"Below are analysis results for {n} ads of one brand, one JSON object per line "
            "(on-image text, speech transcript, captions, objects, colours, faces). Summarise the brand's "
            "advertising: " + _ASK + "\n\n" + rows
        ),
        part_prompt=lambda first, last, total, rows: (
            f"Below are analysis results for ads {first} to {last} of the {total} ads of one brand, one JSON object "
            "per line (on-image text, speech transcript, captions, objects, colours, faces). Summarise this part of "
            "the brand's advertising: " + _ASK + "\n\n" + rows
        ),
        merge_prompt=lambda parts, total, drafts: (
            f"Below are {parts} summaries, one JSON object per line, of consecutive parts of the {total} ads of one "
            "brand. Merge them into one summary of the brand's advertising: " + _ASK + " Keep what recurs across "
            "parts first.\n\n" + drafts
        ),
        max_chars=MAX_DIGEST_CHARS, max_tokens=1500,
    )  # fmt: skip


def fold_items(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The brand's items (``Target.items``) as ``summarize_brand`` reads them: one entry per item.

    A video's or animated image's frames are folded together: every distinct
    OCR line of its kept frames, the first frame's other outputs, and its
    transcript; an audio spot is its transcript. Entries are
    ``{"item_id", "media_type", "analyses": [{"method", "output"}]}``.
    """
    folded = []
    for item in items:
        units = item.get("units") or []
        transcript = (item.get("outputs") or {}).get("transcribe_speech")
        if not units and not transcript:
            continue  # nothing was read from this item
        analyses = [{"method": m, "output": o} for m, o in sorted((units[0].get("outputs") or {}).items())] if units else []
        if units:
            lines, seen = [], set()
            for unit in units:
                for line in ((unit.get("outputs") or {}).get("ocr_text") or {}).get("lines", []):
                    if line.get("text") and line["text"] not in seen:
                        seen.add(line["text"])
                        lines.append(line)
            analyses = [a for a in analyses if a["method"] != "ocr_text"]
            analyses.append({"method": "ocr_text", "output": {"text": "\n".join(l["text"] for l in lines), "lines": lines}})
        if transcript:  # a video's speech, or all there is of an audio spot
            analyses.append({"method": "transcribe_speech", "output": transcript})
        folded.append({"item_id": item["item_id"], "media_type": item["media_type"], "analyses": analyses})
    return folded
