"""The methods' remote branches against a scripted ``ModelClient`` (``ReplayClient``).

Why: the prompts, schemas and reply parsing live in the methods, not in the
bedrock/openai clients; these tests pin what a method asks of a client and how
it turns a reply into its output, with no network and no client code.
"""

from __future__ import annotations

import pytest

from ai_methods import AISettings, MethodRunner
from ai_methods.errors import BadResponseError
from ai_methods.providers.base import Word
from ai_methods.testing import ReplayClient, load_recording, recording_names, sample_png, sample_results


def runner_with(client: ReplayClient, provider: str = "bedrock") -> MethodRunner:
    return MethodRunner(AISettings(default_provider=provider), cache=None, clients={provider: client})


async def test_caption_sends_the_image_prompt_and_schema():
    client = ReplayClient(
        "claude",
        chat=[{"caption": "A barista pours coffee in a bright cafe. The mood is warm.", "subjects": ["barista"],
               "actions": ["pouring coffee"], "setting": "cafe", "mood": "warm"}],
        models={"chat_json": "anthropic.claude-3-5-haiku-20241022-v1:0"},
    )  # fmt: skip
    result = await runner_with(client).run("caption", image=sample_png(0))
    call = client.calls("chat_json")[0]
    assert call.kwargs["images"] == [sample_png(0)]
    assert "2 or 3 sentences" in call.kwargs["prompt"]
    assert "Never guess brand names" in call.kwargs["system"]
    schema = call.kwargs["schema"]
    assert schema["required"] == ["caption"] and set(schema["properties"]) >= {"subjects", "actions", "setting", "mood"}
    assert "$defs" not in str(schema) and "$ref" not in str(schema)
    assert result.output["basis"] == "model" and result.output["setting"] == "cafe"
    assert result.model == "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert result.usage.images == 1 and result.cost_usd > 0  # priced from the default table


async def test_caption_on_frames_sends_at_most_eight_images():
    client = ReplayClient(chat=[{"caption": "x.", "subjects": [], "actions": [], "setting": None, "mood": None}])
    frames = [sample_png(i) for i in range(10)]
    await runner_with(client).run("caption", frames=frames)
    call = client.calls("chat_json")[0]
    assert len(call.kwargs["images"]) == 8 and "10 frames" in call.kwargs["prompt"]


async def test_a_reply_that_breaks_the_schema_is_a_bad_response():
    client = ReplayClient(chat=[{"caption": "ok", "subjects": "not a list"}, {"subjects": []}])
    runner = runner_with(client)
    with pytest.raises(BadResponseError, match="caption on bedrock: the model's JSON does not match the schema at subjects"):
        await runner.run("caption", image=sample_png(0))
    with pytest.raises(BadResponseError, match="at caption: Field required"):
        await runner.run("caption", image=sample_png(1))


async def test_labels_and_brand_safety_from_a_model():
    client = ReplayClient(chat=[{
        "objects": [{"name": "beer bottle", "confidence": 0.9}], "scenes": [{"name": "bar", "confidence": 0.7}],
        "brand_safety": [{"category": "alcohol", "confidence": 0.95, "evidence": "beer bottle"}]}])  # fmt: skip
    out = (await runner_with(client, "openai").run("labels", image=sample_png(1))).output
    assert out["brand_safety"][0]["category"] == "alcohol" and out["assessed"] == ["objects", "scenes", "brand_safety"]
    assert "alcohol" in client.calls()[0].kwargs["prompt"]


async def test_remote_ocr_has_lines_without_boxes():
    client = ReplayClient(chat=[{"lines": [{"text": "FRESH COFFEE", "confidence": 0.98}]}])
    out = (await runner_with(client).run("ocr_text", image=sample_png(0))).output
    assert out["text"] == "FRESH COFFEE" and out["lines"][0]["box"] is None
    assert [w["text"] for w in out["lines"][0]["words"]] == ["FRESH", "COFFEE"]


async def test_bedrock_text_and_image_embeddings_share_the_multimodal_space():
    titan = "amazon.titan-embed-image-v1"
    client = ReplayClient(
        embed_text=[[[0.0, 3.0, 4.0]]],
        embed_image=[[[3.0, 4.0, 0.0]]],
        models={"embed_text": titan, "embed_image": titan},
    )
    runner = runner_with(client)
    text = (await runner.run("embed_text", text="coffee")).output
    image = (await runner.run("embed_image", image=sample_png(0))).output
    assert text["space"] == image["space"] == f"bedrock:{titan}"
    assert text["vector"] == [0.0, 0.6, 0.8] and text["normalized"] and text["dim"] == 3


async def test_an_empty_embedding_reply_is_a_bad_response():
    client = ReplayClient(embed_text=[[]])
    with pytest.raises(BadResponseError, match="expected one vector"):
        await runner_with(client).run("embed_text", text="coffee")


async def test_remote_transcript_gets_segments_and_audio_usage(spoken_wav):
    words = [Word("fresh", 0.1, 0.4, 0.9), Word("coffee", 0.45, 0.9, 0.95), Word("today", 5.0, 5.4, 0.8)]
    client = ReplayClient(transcribe=[words], models={"transcribe": "whisper-1"})
    result = await runner_with(client, "openai").run("transcribe_speech", audio=spoken_wav)
    sent = client.calls("transcribe")[0].kwargs["audio_wav"]
    assert sent[:4] == b"RIFF" and sent[8:12] == b"WAVE"
    out = result.output
    assert out["text"] == "fresh coffee today" and out["segments"][0]["word_count"] == 3
    assert result.usage.audio_seconds == pytest.approx(5.89, abs=0.05)
    assert result.cost_usd == pytest.approx(5.892 / 60 * 0.006, rel=0.01)


async def test_summary_prompt_carries_the_items_digest():
    client = ReplayClient(chat=[{"themes": ["coffee"], "key_messages": ["Fresh coffee"], "calls_to_action": ["Visit"],
                                 "visual_style": "warm browns", "tone": "friendly"}])  # fmt: skip
    out = (await runner_with(client).run("summarize_brand", results=sample_results())).output
    prompt = client.calls()[0].kwargs["prompt"]
    assert "FRESH COFFEE" in prompt and '"item": "item-2"' in prompt and client.calls()[0].kwargs["images"] == []
    assert out["item_count"] == 2 and out["basis"] == "model"


def test_recordings_load_by_name():
    names = recording_names()
    assert names, "ai_methods/testing/recordings/ holds the recorded provider bodies"
    body = load_recording(names[0])
    assert isinstance(body, (dict, list))
    with pytest.raises(KeyError, match="no recording 'nope'"):
        load_recording("nope")


async def test_a_brand_too_large_for_one_call_is_summarised_in_parts_then_merged(monkeypatch):
    """The remote summary once read only the first 60,000 characters; every item must reach a model now."""
    import ai_methods.builtin.summarize_brand as summarize_brand

    monkeypatch.setattr(summarize_brand, "MAX_DIGEST_CHARS", 400)
    items = [{"item_id": f"item-{i}", "ocr_text": {"text": f"OFFER {i}"}} for i in range(12)]
    part = {"themes": ["offers"], "key_messages": ["OFFER"], "calls_to_action": [], "visual_style": "plain",
            "tone": "direct"}  # fmt: skip
    client = ReplayClient(chat=[part] * 40)

    result = await runner_with(client).run("summarize_brand", results=items)

    prompts = [c.kwargs["prompt"] for c in client.calls()]
    parts = [p for p in prompts if "Summarise this part" in p]
    merges = [p for p in prompts if "Merge them" in p]
    assert len(parts) >= 2 and merges and "Merge them" in prompts[-1]
    assert all(f'"item": "item-{i}"' in "\n".join(parts) for i in range(12))  # every item read by a model
    assert all(len(p) < 400 + 600 for p in prompts)  # each call's data within the cap (plus the instructions)
    assert result.output["item_count"] == 12 and result.output["basis"] == "model"
    assert result.usage.requests == len(prompts)  # the cost counts every call


@pytest.mark.parametrize(("rows", "cap", "expected"), [
    ([], 10, []),
    (["aaaa", "bbbb", "cc"], 10, [["aaaa", "bbbb"], ["cc"]]),
    (["x" * 25, "y"], 10, [["x" * 10], ["y"]]),  # one over-long row is cut, never dropped
])  # fmt: skip
def test_digest_rows_are_packed_into_calls_without_losing_any(rows, cap, expected):
    from ai_methods.builtin.summary_chunks import pack

    assert pack(rows, cap) == expected
