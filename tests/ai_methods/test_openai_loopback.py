"""The benchmark's OpenAI-compatible loopback server answers what the methods accept, and counts at the server.

Why: ``bench/bench_ai_stage.py`` derives its bound from the requests this
server counts; if its answers failed the methods' schemas the benchmark would
measure failures, and if its counters were wrong, so would the ratio.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from ai_methods.calls import MethodRunner
from ai_methods.settings import AISettings
from tests.ai_methods.conftest import tiny_png
from tests.support.loopback_http import LoopbackHTTPServer
from tests.support.openai_loopback import fetch_stats, openai_routes, reset_stats


def test_every_remote_image_method_accepts_its_answers_and_each_request_is_counted() -> None:
    with LoopbackHTTPServer() as server:
        for path, route, prefix in openai_routes(delay_s=0.0):
            server.route(path, route, prefix=prefix)
        origin = f"http://{server.netloc}"
        env = {
            "AD_ASSETS_AI_PROVIDER": "openai",
            "AD_ASSETS_OPENAI_BASE_URL": origin + "/v1",
            "AD_ASSETS_OPENAI_API_KEY": "loopback",
            "AD_ASSETS_OPENAI_IMAGE_EMBED_MODEL": "loopback-image-embed",
            "AD_ASSETS_AI_CACHE": "off",
        }
        # urllib blocks: ask for the counters from a thread, as the benchmark does between runs.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(reset_stats, origin).result()

            async def run() -> dict:
                async with MethodRunner(AISettings.from_env(env), cache=None) as runner:
                    image = tiny_png()
                    names = ("ocr_text", "caption", "labels", "embed_image")
                    results = await asyncio.gather(*(runner.run(m, image=image) for m in names))
                    results.append(await runner.run("embed_text", text=results[1].output["caption"]))
                    return {r.method: r.output for r in results}

            outputs = asyncio.run(run())
            stats = pool.submit(fetch_stats, origin).result()
    assert outputs["ocr_text"]["text"] == "SUMMER SALE\nSHOP NOW"
    assert outputs["caption"]["basis"] == "model"
    assert outputs["labels"]["objects"][0]["name"] == "text"
    assert outputs["embed_image"]["dim"] == outputs["embed_text"]["dim"] == 1024
    assert stats["requests"] == {"/v1/chat/completions": 3, "/v1/embeddings": 2}
    assert stats["total_requests"] == 5
    assert 1 <= stats["max_in_flight"] <= 4
    assert stats["bytes_in"] > 4 * len(tiny_png())  # four requests carried the picture


def test_a_batch_of_texts_gets_one_vector_each() -> None:
    # Pixeltable, the benchmark's peer, batches its embedding inputs: one vector per input, in order.
    from ai_methods.providers.openai_compat import OpenAIClient

    with LoopbackHTTPServer() as server:
        for path, route, prefix in openai_routes(delay_s=0.0):
            server.route(path, route, prefix=prefix)
        client = OpenAIClient.from_env(
            {"AD_ASSETS_OPENAI_BASE_URL": f"http://{server.netloc}/v1", "AD_ASSETS_OPENAI_API_KEY": "loopback"}
        )

        async def run():
            try:
                return await client.embed_text(["one", "two", "three"])
            finally:
                await client.aclose()

        reply = asyncio.run(run())
    assert len(reply.vectors) == 3 and reply.dim == 1024
