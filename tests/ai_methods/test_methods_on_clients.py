"""The built-in methods through the call path on the real bedrock/openai clients, against loopback fakes.

Why: the methods (prompts, schemas, parsing) and the clients (wire formats)
are written separately against the ``ModelClient`` contract; these tests run
them together over real sockets with the recorded provider bodies, so a
mismatch (model ids, spaces, usage, reply shapes) shows up here.
"""

from __future__ import annotations

import pytest

from ai_methods import MethodRunner
from ai_methods.testing import sample_png
from tests.ai_methods.fake_servers import (  # noqa: F401 - fixtures
    FakeBedrockServer,
    FakeOpenAIServer,
    bedrock_server,
    openai_server,
)

pytestmark = pytest.mark.usefixtures("isolated_aws")

AWS = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


async def test_bedrock_caption_and_shared_embedding_space(tmp_path, bedrock_server: FakeBedrockServer):
    env = {**AWS, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_server.origin, "AD_ASSETS_HOME": str(tmp_path)}
    async with MethodRunner.from_env({**env, "AD_ASSETS_AI_PROVIDER": "bedrock"}) as runner:
        caption = await runner.run("caption", image=sample_png(0))
        assert caption.output["basis"] == "model" and "barista" in caption.output["caption"]
        assert caption.usage.input_tokens > 0 and caption.cost_usd > 0
        image = (await runner.run("embed_image", image=sample_png(0))).output
        text = (await runner.run("embed_text", text="fresh coffee")).output
        assert image["dim"] == text["dim"] == 1024
        assert image["space"] == text["space"]  # Titan Multimodal: one space for text and image
        assert (await runner.run("caption", image=sample_png(0))).cached
        acct = runner.accounting()
    assert acct["methods"]["caption"]["cache_hits"] == 1 and acct["total"]["failures"] == {}


async def test_openai_caption_embeddings_and_transcript(tmp_path, openai_server: FakeOpenAIServer, spoken_wav):
    env = {
        "AD_ASSETS_HOME": str(tmp_path),
        "AD_ASSETS_AI_PROVIDER": "openai",
        "AD_ASSETS_OPENAI_BASE_URL": openai_server.base_url,
        "AD_ASSETS_OPENAI_API_KEY": "sk-test",
    }
    async with MethodRunner.from_env(env) as runner:
        caption = await runner.run("caption", image=sample_png(0))
        assert caption.output["setting"] == "cafe" and caption.model.startswith("gpt-4o-mini")
        text = (await runner.run("embed_text", text="fresh coffee")).output
        assert text["space"].startswith("openai:text-embedding") and text["dim"] == len(text["vector"])
        transcript = await runner.run("transcribe_speech", audio=spoken_wav)
        words = transcript.output["words"]
        assert [w["text"] for w in words][:2] == ["Fresh", "coffee"]
        assert transcript.output["segments"] and transcript.usage.audio_seconds > 0
        assert transcript.cost_usd > 0
