"""The per-item journal: each AI step's result appended as one JSON line.

While an item passes the AI steps, every finished step is appended and synced
to the item's own file. A killed process loses at most the step in flight (a torn last
line is ignored on reading); a re-run reads the journal and repeats only what
is missing. The caller copies the journal to the store beside the media while
the item is in progress (``unsynced`` counts the steps not copied yet) and
when it is done.

The file is opened once per item and kept open until ``close``: creating a
file and its folder costs ~0.5 ms on ext4 (milliseconds on a busy machine),
and the AI stage records ~7 steps per picture on its event loop
(``bench/bench_ai_stage.py``). ``open_async`` does the reading and the
opening in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import orjson

_JOURNAL_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


class ItemJournal:
    """Append-only JSON-lines record of one item's finished steps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unsynced = 0  # steps recorded here since the last copy to the store
        self._done: dict[str, dict[str, Any]] = {}
        self._handle: IO[bytes] | None = None
        self._created = False  # this journal created its file (removed again by ``close`` if nothing was recorded)
        if path.exists():
            self._done = self._read(path)
            self._end_torn_line(path)

    @classmethod
    def open(cls, path: Path) -> ItemJournal:
        """The journal at ``path``, read and its file opened for appending (file system work: off the event loop)."""
        journal = cls(path)
        journal._open()
        return journal

    @classmethod
    async def open_async(cls, path: Path) -> ItemJournal:
        """``open`` in a worker thread."""
        return await asyncio.to_thread(cls.open, path)

    @staticmethod
    def _read(path: Path) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        with path.open("rb") as handle:
            for line in handle:
                try:
                    # json, not orjson: read once per item on resume, off the loop, and exact for what
                    # orjson reads otherwise (NaN written by earlier versions, integers past 64 bits).
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash mid-write: that step runs again
                if isinstance(entry, dict) and "step" in entry:
                    done[entry["step"]] = entry.get("result") or {}
        return done

    @staticmethod
    def _end_torn_line(path: Path) -> None:
        # A record appended after a torn line must start on a line of its own.
        with path.open("rb+") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = self._created or not self.path.exists()
            self._handle = self.path.open("ab")
        return self._handle

    @property
    def written(self) -> bool:
        """Whether the journal's file holds anything (a step of this or an earlier run, or a torn line)."""
        if self._done:
            return True
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def completed(self) -> dict[str, dict[str, Any]]:
        """Every finished step and its result (the last record of a step wins)."""
        return dict(self._done)

    def has(self, step: str) -> bool:
        """Whether ``step`` finished in this or an earlier run."""
        return step in self._done

    def get(self, step: str) -> dict[str, Any] | None:
        """The result of ``step`` if it finished."""
        return self._done.get(step)

    def record(self, step: str, result: dict[str, Any]) -> None:
        """Append ``step``'s result and hand it to the OS before returning.

        Flushed, not fsynced, per step: a killed process loses nothing written;
        only a machine crash could lose the last steps, which then run again.
        The line is written with one ``write`` of the whole line on the file
        kept open (opened here if ``open_async`` did not).
        """
        entry = {"step": step, "at": datetime.now(timezone.utc).isoformat(), "result": result}
        # orjson: a line with a 1024-float vector in 0.02 ms, json took 0.2 ms of the event loop. NumPy
        # scalars and arrays are written as numbers (orjson would hand a float64 to ``default`` as text).
        try:
            line = orjson.dumps(entry, default=str, option=_JOURNAL_JSON)
        except TypeError:  # what only json writes: an integer past 64 bits
            line = json.dumps(entry, default=str, separators=(",", ":")).encode() + b"\n"
        handle = self._open()
        handle.write(line)
        handle.flush()
        self._done[step] = result
        self.unsynced += 1

    def mark_synced(self, steps: int) -> None:
        """``steps`` of the unsynced records reached the store (others may have been recorded meanwhile)."""
        self.unsynced = max(0, self.unsynced - steps)

    def close(self) -> None:
        """Close the file (a later ``record`` opens it again); a file this journal created and
        never wrote is removed, so a re-run still looks for the journal in the store."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            if self._created and not self._done:
                self.path.unlink(missing_ok=True)
                self._created = False

    def __enter__(self) -> ItemJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
