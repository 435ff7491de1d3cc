"""The SQS sensor's cursor: the requests it asked runs for and has not yet deleted from the queue.

A request is *pending* from the tick that returned its ``RunRequest`` until a
later tick sees a run with its run key on the instance; only then are its
messages deleted. The cursor keeps, per run key, the receipt handle of every
message that carried the request (duplicates attach to the same entry), so the
next tick can delete them, or extend their visibility while it waits.

Serialised as compact JSON with a version number. A cursor that cannot be read
(hand-edited, from an incompatible version) is treated as empty: nothing is
lost, because every message it named is still in the queue and comes back
when its visibility timeout lapses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CURSOR_VERSION = 1


class CursorError(ValueError):
    """The cursor string is not one this version wrote."""


@dataclass
class PendingRequest:
    """One requested run awaiting confirmation, and the messages to delete once it exists."""

    run_key: str
    brand: str
    request_id: str | None
    #: message id → latest receipt handle (a re-delivery replaces the handle)
    handles: dict[str, str] = field(default_factory=dict)
    #: ticks that ended without seeing the run
    ticks_waited: int = 0

    def to_json(self) -> dict:
        """The compact JSON form."""
        doc = {"k": self.run_key, "b": self.brand, "m": self.handles, "t": self.ticks_waited}
        if self.request_id:
            doc["r"] = self.request_id
        return doc

    @classmethod
    def from_json(cls, doc: dict) -> "PendingRequest":
        """Read :meth:`to_json`'s form."""
        handles = doc["m"]
        if not isinstance(handles, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in handles.items()):
            raise CursorError("pending entry's 'm' must map message ids to receipt handles")
        return cls(str(doc["k"]), str(doc["b"]), doc.get("r"), dict(handles), int(doc.get("t", 0)))


@dataclass
class IntakeCursor:
    """Everything the sensor carries from one tick to the next."""

    pending: dict[str, PendingRequest] = field(default_factory=dict)

    def serialize(self) -> str:
        """The string Dagster stores."""
        entries = [p.to_json() for p in self.pending.values()]
        return json.dumps({"v": CURSOR_VERSION, "pending": entries}, separators=(",", ":"))

    @classmethod
    def parse(cls, raw: str | None) -> "IntakeCursor":
        """Read a cursor written by :meth:`serialize`; ``None`` or ``""`` is empty. Raises ``CursorError``."""
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("v") != CURSOR_VERSION:
                raise CursorError(f"cursor version {doc.get('v') if isinstance(doc, dict) else None!r} is not {CURSOR_VERSION}")
            entries = [PendingRequest.from_json(entry) for entry in doc["pending"]]
        except CursorError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CursorError(f"cursor is not readable ({type(exc).__name__}: {exc})") from None
        return cls({entry.run_key: entry for entry in entries})

    @property
    def message_count(self) -> int:
        """Messages held in flight by this cursor."""
        return sum(len(p.handles) for p in self.pending.values())
