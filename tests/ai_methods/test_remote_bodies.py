"""What the AI stage sends remote models is built once per picture, off the event loop, and reaches the wire intact.

Why: at 32–64 requests in flight the event loop's CPU, not the provider, set
the pace: every request re-read, re-encoded and base64-encoded its picture and
JSON-escaped megabytes of base64. These tests pin the shapes that removed that
work (a shared ``ImageInput``, ``EncodedImage`` data URLs, ``JsonWithBlobs``
bodies, several small HTTP pools) and that the bytes on the wire are still
exactly what OpenAI documents.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import ssl
import threading

import pytest
from PIL import Image

from ai_methods.builtin.dominant_colors import ColorsOutput
from ai_methods.inputs import image_input
from ai_methods.providers import openai_compat
from ai_methods.providers.openai_compat import OpenAIClient
from ai_methods.providers.local import LocalProvider
from ai_methods.providers.payloads import EncodedImage, JsonWithBlobs, data_url
from tests.ai_methods.conftest import tiny_png
from tests.ai_methods.fake_servers import FakeOpenAIServer, openai_server  # noqa: F401 - fixture
from tests.ai_methods.test_openai_client import API_KEY, ask, client_for
from tests.support.loopback_http import LoopbackHTTPServer
from tests.support.openai_loopback import openai_routes


def _png(size: tuple[int, int], colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "payload",
    [
        {"a": "@x", "b": ["é", "\u2028", "\"quoted\""]},  # text that json.dumps escapes stays escaped
        {"only": "text"},
    ],
)
def test_json_with_blobs_splices_each_blob_where_its_placeholder_was(payload) -> None:
    body = JsonWithBlobs()
    blobs = [b"data:image/png;base64,AAAA", b"data:image/jpeg;base64,/9j/" + b"Q" * 5000]
    request = {**payload, "images": [{"url": body.blob(blobs[1])}, {"url": body.blob(blobs[0])}]}
    sent = json.loads(body.encode(request))
    assert sent == {**payload, "images": [{"url": blobs[1].decode()}, {"url": blobs[0].decode()}]}
    parts = body.parts(request)  # what the client sends, one piece after another
    assert b"".join(parts) == body.encode(request)
    assert sum(part is blob for part in parts for blob in blobs) == 2  # the blobs themselves, not copies


def test_a_placeholder_missing_from_the_payload_is_an_error_not_a_silent_drop() -> None:
    body = JsonWithBlobs()
    body.blob(b"data:image/png;base64,AAAA")
    with pytest.raises(ValueError, match="exactly once"):
        body.encode({"nothing": "here"})


def test_text_that_looks_like_a_placeholder_of_another_body_is_left_alone() -> None:
    first, second = JsonWithBlobs(), JsonWithBlobs()
    marker = first.blob(b"data:image/png;base64,AAAA")
    request = {"text": marker, "url": second.blob(b"data:image/png;base64,BBBB")}
    assert json.loads(second.encode(request)) == {"text": marker, "url": "data:image/png;base64,BBBB"}


def test_data_url_is_built_once_per_encoded_image_and_names_the_sniffed_type() -> None:
    png = tiny_png()
    image = EncodedImage(png)
    first = data_url(image)
    assert first == b"data:image/png;base64," + base64.b64encode(png)
    assert data_url(image) is first  # kept, not rebuilt
    assert data_url(png) == first  # plain bytes work too
    assert image.base64() is image.base64() == base64.b64encode(png)


def test_one_shared_image_is_decoded_once_and_downscaled_once_per_size() -> None:
    big = _png((2000, 1000))
    image = image_input(big)
    calls = []
    real = image._rgb_shared

    def counting():
        calls.append(1)
        return real()

    object.__setattr__(image, "_rgb_shared", counting)
    small = image.for_remote(1568)
    assert small is image.for_remote(1568)  # built once
    assert Image.open(io.BytesIO(small)).size == (1568, 784)
    assert Image.open(io.BytesIO(image.for_remote(512))).size == (512, 256)
    assert len(calls) == 2  # one per size, through the one shared decode
    assert image.rgb().size == (2000, 1000)  # downscaling did not touch the shared picture
    assert image_input(image) is image  # handing it on shares it


def test_a_picture_within_the_limit_goes_as_its_own_bytes() -> None:
    png = _png((800, 600))
    assert bytes(image_input(png).for_remote()) == png


async def test_remote_runs_off_the_loop_and_returns_the_cached_body() -> None:
    image = image_input(_png((2000, 1000)))
    threads = []
    real = image.for_remote

    def spy(max_side):
        threads.append(threading.current_thread())
        return real(max_side)

    object.__setattr__(image, "for_remote", spy)
    first = await image.remote()
    assert threads == [t for t in threads if t is not threading.main_thread()] and threads
    assert await image.remote() is first


async def test_requests_asking_at_once_share_one_build_in_one_worker_thread() -> None:
    """Four requests about one picture ask together: one thread builds, none waits on a lock in a thread."""
    image = image_input(_png((2000, 1000)))
    release, calls = threading.Event(), []
    real = image.for_remote

    def slow(max_side):
        calls.append(max_side)
        release.wait(5)
        return real(max_side)

    object.__setattr__(image, "for_remote", slow)
    askers = [asyncio.ensure_future(image.remote()) for _ in range(4)]
    await asyncio.sleep(0)
    askers[0].cancel()  # one asker given up (its timeout) does not cancel the others' build
    await asyncio.sleep(0.05)
    release.set()
    bodies = await asyncio.gather(*askers[1:])
    assert calls == [1568] and all(b is bodies[0] for b in bodies)
    assert askers[0].cancelled()
    assert await image.remote() is bodies[0] and calls == [1568]


async def test_a_failed_build_reaches_every_asker_and_the_next_ask_builds_again() -> None:
    image = image_input(_png((2000, 1000)))
    real, calls = image.for_remote, []

    def failing_once(max_side):
        calls.append(max_side)
        if len(calls) == 1:
            raise RuntimeError("disk full")
        return real(max_side)

    object.__setattr__(image, "for_remote", failing_once)
    results = await asyncio.gather(image.remote(), image.remote(), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError] and len(calls) == 1
    assert Image.open(io.BytesIO(await image.remote())).size == (1568, 784) and len(calls) == 2


async def test_requests_spread_over_small_pools_and_each_body_reaches_the_server(
    openai_server: FakeOpenAIServer, monkeypatch
) -> None:
    monkeypatch.setattr(openai_compat, "REQUESTS_PER_CLIENT", 2)
    client, image = client_for(openai_server), EncodedImage(tiny_png())
    await asyncio.gather(*(ask(client, [image]) for _ in range(5)))  # within the test server's accept backlog
    pools = len(client._pool)
    await client.aclose()
    assert 1 <= pools <= 3  # 5 at once, 2 per pool
    assert len(openai_server.requests) == 5
    for request in openai_server.requests:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["content-type"] == "application/json"
        # sent as pieces with their total length: no chunked encoding, which some servers refuse
        assert "transfer-encoding" not in request.headers
        assert int(request.headers["content-length"]) == len(request.body)
        url = request.json()["messages"][1]["content"][1]["image_url"]["url"]
        assert url == "data:image/png;base64," + base64.b64encode(tiny_png()).decode()


async def test_a_client_used_on_a_new_loop_opens_new_pools(openai_server: FakeOpenAIServer) -> None:
    client = client_for(openai_server)
    await ask(client, [tiny_png()])
    old = list(client._pool)

    def other_loop() -> None:
        asyncio.run(ask(client, [tiny_png()]))

    await asyncio.to_thread(other_loop)
    assert client._pool and not set(map(id, client._pool)) & set(map(id, old))
    for http in old:
        await http.aclose()


def test_concurrent_askers_of_one_local_measurement_compute_it_once() -> None:
    provider = LocalProvider()
    started, release = threading.Event(), threading.Event()
    computed = []

    def slow() -> int:
        computed.append(1)
        started.set()
        release.wait(10)
        return 42

    results = []
    threads = [threading.Thread(target=lambda: results.append(provider._memoised("ocr", "abc", slow))) for _ in range(3)]
    threads[0].start()
    started.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert results == [42, 42, 42] and computed == [1]


def test_colour_shares_rounded_up_one_by_one_are_still_valid() -> None:
    # Five shares each rounded up by 0.00004 sum to 1.0002: rounding, not a bug in the measure.
    colours = [{"hex": "#000000", "rgb": [0, 0, 0], "share": s, "name": "black"} for s in (0.2, 0.2, 0.2, 0.2, 0.2002)]
    ColorsOutput.model_validate({"colors": colours})
    with pytest.raises(ValueError, match="more than 1"):
        ColorsOutput.model_validate({"colors": [{**colours[0], "share": 0.6}, {**colours[0], "share": 0.41}]})


# ----- kinds from public bug reports of vision clients ------------------------------------------
# open-webui#26725 (image bytes reached the model without base64), comic-translate#399 ("image/jpg"
# is no MIME type), snow-app#113 / hermes-agent#6964 (BMP and oversized pictures sent as they are),
# httpx#1171 (more concurrent requests than one pool's connections end in PoolTimeout).


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
async def test_the_spliced_data_url_decodes_back_to_the_very_bytes_with_their_mime(
    openai_server: FakeOpenAIServer, fmt: str, mime: str
) -> None:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, fmt)
    image = image_input(out.getvalue())
    client = client_for(openai_server)
    await ask(client, [await image.remote()])
    await client.aclose()
    url = openai_server.requests[0].json()["messages"][1]["content"][1]["image_url"]["url"]
    prefix, _, payload = url.partition(",")
    assert prefix == f"data:{mime};base64"
    assert base64.b64decode(payload, validate=True) == out.getvalue()


def test_a_bmp_or_an_oversized_picture_goes_as_a_bounded_jpeg() -> None:
    out = io.BytesIO()
    Image.new("RGB", (3000, 200), (250, 250, 250)).save(out, "BMP")
    sent = image_input(out.getvalue()).for_remote()
    assert data_url(sent).startswith(b"data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(sent)).size == (1568, 105)
    assert len(sent) < len(out.getvalue()) / 10


async def test_more_requests_at_once_than_the_pools_hold_all_complete(monkeypatch) -> None:
    monkeypatch.setattr(openai_compat, "REQUESTS_PER_CLIENT", 1)
    monkeypatch.setattr(openai_compat, "MAX_CLIENTS", 2)
    with LoopbackHTTPServer() as server:  # a deep accept backlog: 30 connects at once are all taken
        for path, route, prefix in openai_routes(delay_s=0.05):
            server.route(path, route, prefix=prefix)
        client = OpenAIClient.from_env(
            {"AD_ASSETS_OPENAI_BASE_URL": f"http://{server.netloc}/v1", "AD_ASSETS_OPENAI_API_KEY": API_KEY}
        )
        replies = await asyncio.gather(*(ask(client, [tiny_png()]) for _ in range(30)))
        pools = len(client._pool)
        await client.aclose()
        hits = server.hits["/v1/chat/completions"]
    assert len(replies) == 30 and pools == 2 and hits == 30
    assert replies[0].data["caption"]


async def test_every_pool_of_a_client_verifies_tls_with_one_shared_context(monkeypatch) -> None:
    """Each pool used to load the CA bundle anew (~17 ms of the event loop, up to 64 pools a run)."""
    from ai_methods.providers.provider_settings import OpenAISettings

    built = []
    real = openai_compat.httpx.create_ssl_context

    def counting(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(openai_compat.httpx, "create_ssl_context", counting)
    monkeypatch.setattr(openai_compat, "REQUESTS_PER_CLIENT", 1)
    client = OpenAIClient(OpenAISettings.from_env({"AD_ASSETS_OPENAI_API_KEY": "k"}))
    indexes = [client._take_client() for _ in range(3)]  # all busy: three pools
    contexts = [http._transport._pool._ssl_context for http in client._pool]
    await client.aclose()
    assert indexes == [0, 1, 2] and len(built) == 1
    assert all(ctx is built[0] for ctx in contexts)
    assert built[0].verify_mode is ssl.CERT_REQUIRED and built[0].check_hostname


def test_replies_orjson_refuses_are_read_as_python_json_reads_them() -> None:
    from ai_methods.providers.payloads import loads_json

    assert loads_json(b'{"v": [0.5, 1e-7]}') == {"v": [0.5, 1e-7]}
    assert loads_json(b'{"x": NaN, "lp": -Infinity}')["lp"] == float("-inf")  # as servers built on Python's json write them
    with pytest.raises(ValueError):
        loads_json(b"<html>502 Bad Gateway</html>")
