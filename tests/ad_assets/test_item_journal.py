"""The item journal kept open for an item's steps: what a crash or a re-run sees."""

from __future__ import annotations

import asyncio
import json

from ad_assets.engine.item_journal import ItemJournal


def test_each_step_is_on_disk_while_the_file_stays_open(tmp_path):
    path = tmp_path / "journals" / "item.jsonl"  # the folder does not exist yet
    journal = asyncio.run(ItemJournal.open_async(path))
    journal.record("image:ocr_text", {"output": {"text": "SAVE 20%"}})
    # A process killed now: what another reader finds is every recorded step, not a buffer.
    assert ItemJournal(path).completed() == {"image:ocr_text": {"output": {"text": "SAVE 20%"}}}
    journal.record("image:embed_image", {"output": {"vector": [0.1, -2.5e-07, 3.0]}})
    assert ItemJournal(path).get("image:embed_image") == {"output": {"vector": [0.1, -2.5e-07, 3.0]}}
    journal.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["step"] for line in lines] == ["image:ocr_text", "image:embed_image"]


def test_a_journal_that_recorded_nothing_leaves_no_file(tmp_path):
    # An empty file would stop a re-run from resuming the journal another machine stored.
    path = tmp_path / "item.jsonl"
    journal = asyncio.run(ItemJournal.open_async(path))
    assert path.exists() and not journal.written
    journal.close()
    assert not path.exists()


def test_an_earlier_runs_journal_is_kept_and_appended_after_a_torn_line(tmp_path):
    path = tmp_path / "item.jsonl"
    with ItemJournal(path) as first:
        first.record("caption", {"caption": "x"})
    with path.open("ab") as handle:
        handle.write(b'{"step": "labels", "resu')  # killed mid-write
    with asyncio.run(ItemJournal.open_async(path)) as again:
        assert again.written and again.completed() == {"caption": {"caption": "x"}}
        again.record("labels", {"labels": []})
    assert path.exists()
    assert ItemJournal(path).completed() == {"caption": {"caption": "x"}, "labels": {"labels": []}}


def test_record_after_close_opens_the_file_again(tmp_path):
    path = tmp_path / "item.jsonl"
    journal = ItemJournal(path)
    journal.record("a", {"n": 1})
    journal.close()
    journal.record("b", {"n": 2})
    journal.close()
    assert ItemJournal(path).completed() == {"a": {"n": 1}, "b": {"n": 2}}


def test_a_line_torn_inside_a_multibyte_character_is_skipped_and_the_next_record_kept(tmp_path):
    # Bug-report kind: a crash mid-character left bytes that do not decode; the reader must skip
    # that line only, and the next record must start on a line of its own.
    path = tmp_path / "item.jsonl"
    with ItemJournal(path) as first:
        first.record("caption", {"caption": "café"})
    with path.open("ab") as handle:
        handle.write('{"step":"ocr_text","result":{"text":"caf'.encode() + "é".encode()[:1])
    with asyncio.run(ItemJournal.open_async(path)) as again:
        assert again.completed() == {"caption": {"caption": "café"}}
        again.record("ocr_text", {"text": "café"})
    assert ItemJournal(path).completed() == {"caption": {"caption": "café"}, "ocr_text": {"text": "café"}}


def test_two_journals_open_on_one_item_append_whole_lines(tmp_path):
    # Bug-report kind: records larger than a write buffer spliced into each other, or a kept-open
    # handle writing over another's lines. Two runs of one item (two brands sharing a file) keep
    # the same journal open; every line stays whole, vectors of 1024 floats included.
    path = tmp_path / "item.jsonl"
    vector = [i / 3 for i in range(1024)]  # ~20 KB of JSON, over the 8 KiB buffer
    a, b = asyncio.run(ItemJournal.open_async(path)), asyncio.run(ItemJournal.open_async(path))
    for i in range(4):
        a.record(f"a{i}", {"output": {"vector": vector}})
        b.record(f"b{i}", {"output": {"n": i}})
    a.close(), b.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["step"] for line in lines] == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]
    assert ItemJournal(path).get("a3") == {"output": {"vector": vector}}


def test_vectors_and_keys_read_back_as_they_were_recorded(tmp_path):
    """Lines are written by orjson and read by it: a resumed step must give the very floats of the
    run that paid for it (shortest round-trip repr), and keys must read back as json wrote them."""
    import random

    import numpy as np

    rng = random.Random(7)
    vector = [rng.gauss(0.0, 0.03) for _ in range(1024)] + [1e-310, -0.0, 5e-324, 1.7976931348623157e308]
    numbers = {"f64": np.float64(0.25), "f32": np.float32(0.5), "i64": np.int64(3), "array": np.arange(3)}
    result = {"output": {"vector": vector, "dim": len(vector)}, "usage": {1: "int key", "n": 2}, "path": tmp_path,
              "numbers": numbers}  # fmt: skip
    journal = ItemJournal(tmp_path / "item.jsonl")
    journal.record("image:embed_image", result)
    journal.close()

    again = ItemJournal(tmp_path / "item.jsonl").get("image:embed_image")
    assert again["output"]["vector"] == vector  # bit-exact, every float
    assert again["usage"] == {"1": "int key", "n": 2}  # as json.dumps wrote int keys
    assert again["path"] == str(tmp_path)  # default=str, as before
    assert again["numbers"] == {"f64": 0.25, "f32": 0.5, "i64": 3, "array": [0, 1, 2]}  # numbers, never their text
    line = (tmp_path / "item.jsonl").read_bytes()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["result"]["output"]["vector"] == vector  # plain JSON any reader takes


def test_lines_json_wrote_before_orjson_still_read_back(tmp_path):
    """Journals written by json.dumps hold what orjson refuses (NaN, integers past 64 bits): still steps done,
    and a result holding such an integer is still recorded, exactly."""
    path = tmp_path / "old.jsonl"
    entry = {"step": "image:labels", "at": "2026-11-30T00:00:00+00:00", "result": {"score": float("nan"), "id": 2**70}}
    path.write_text(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
    journal = ItemJournal(path)
    got = journal.get("image:labels")
    assert got["id"] == 2**70 and got["score"] != got["score"]  # NaN
    journal.record("image:caption", {"id": 2**70 + 1})
    journal.close()
    assert ItemJournal(path).get("image:caption") == {"id": 2**70 + 1}
