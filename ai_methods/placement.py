"""Where a method runs in the brand pipeline: what it applies to, what it needs, and when.

A method declares its place; the engine (``ad_assets.engine.pipeline_plan``)
orders the work from those declarations, so a method shipped in another
package runs in a brand's materialisation without any change to the engine::

    class PriceMentions(AIMethod):
        name = "price_mentions"
        accepts = (TEXT,)                    # gets the needed outputs' text
        applies_to = PICTURE                 # each still image and each kept video frame
        needs = ("ocr_text",)                # run after ocr_text on the same picture
        condition = TEXT_FOUND               # only where text was read
        search_field = "summary"             # embed this output field for text search

The scopes, narrowest first:

- ``picture``: a still image, or one kept frame of a video or animated image
  (after near-duplicate frames are dropped);
- ``item``: a whole media item (an image, a video, an audio spot), after the
  item-level methods and picture-level methods it needs;
- ``brand``: the set of a brand's items, after every item is analysed (a
  "cycle"); brand-level methods that need other brand-level methods run after
  them, so cycles follow one another.

A need on a method of a narrower scope gathers every result of it inside the
target (an item-level method needing ``ocr_text`` gets each picture's OCR);
on a wider scope, the enclosing one (a picture-level method needing
``transcribe_speech`` gets its item's transcript).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

PICTURE, ITEM, BRAND = "picture", "item", "brand"
SCOPES: tuple[str, ...] = (PICTURE, ITEM, BRAND)  # narrowest first


@dataclass(frozen=True)
class Target:
    """What the engine knows of one picture, item or brand when a method is about to run there.

    ``outputs`` holds the outputs of the methods the running method ``needs``
    (and only those): for a need of the same or a wider scope, one output
    (``{method: output}``); for a need of a narrower scope, see ``unit_outputs``
    (item scope: ``{method: [{"frame_index", "t_s", "output"}, …]}`` in time
    order) and ``items`` (brand scope: one dict per analysed item,
    ``{"item_id", "sha256", "media_type", "outputs": {method: output},
    "units": [{"unit", "frame_index", "t_s", "outputs": {method: output}}]}``).
    A need that failed or did not apply is absent.
    """

    scope: str
    media_type: str | None = None  # image | video | audio (None at brand scope)
    has_audio: bool = False
    animated: bool = False
    unit: str | None = None  # picture scope: "image" or "frame"
    frame_index: int | None = None
    t_s: float | None = None
    picture: Any = None  # picture scope: the decoded-once image (``ImageInput``) or its bytes
    media: Path | None = None  # item scope: the item's local media file (read it only: it may be the store's own)
    outputs: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    unit_outputs: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    items: tuple[dict[str, Any], ...] = ()
    brand: str | None = None

    def output(self, method: str) -> dict[str, Any]:
        """A needed method's output here, or ``{}`` when it failed, did not apply or is not needed."""
        return self.outputs.get(method) or {}

    def text(self, *methods: str) -> str:
        """The non-empty ``text`` fields of the named outputs (default: every needed output), one per line."""
        names = methods or tuple(self.outputs)
        parts = [str(self.output(m).get("text") or "").strip() for m in names]
        return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class Condition:
    """When a placed method runs: ``test(target)`` is true. ``description`` is what listings show."""

    description: str
    test: Callable[[Target], bool] = field(compare=False)

    def __call__(self, target: Target) -> bool:
        return bool(self.test(target))

    def __and__(self, other: "Condition") -> "Condition":
        return Condition(f"{self.description} and {other.description}", lambda t: self(t) and other(t))


def _text_found(target: Target) -> bool:
    if target.text():
        return True
    return any(u.get("output", {}).get("text") for found in target.unit_outputs.values() for u in found)


TEXT_FOUND = Condition("text was found in a needed output", _text_found)
HAS_AUDIO = Condition(
    "the item has sound (an audio spot, or a video with an audio track)",
    lambda t: t.media_type == "audio" or (t.media_type == "video" and t.has_audio),
)


def media_type_is(*types: str) -> Condition:
    """Only for items of these media types (``image``, ``video``, ``audio``)."""
    return Condition(f"media type is {' or '.join(types)}", lambda t: t.media_type in types)
