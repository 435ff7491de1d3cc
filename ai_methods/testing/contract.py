"""The contract every registered method passes, whoever wrote it.

``check_method_contract(method)`` checks, on the fake provider:

1. the class attributes: snake_case name, a version, known input kinds, ``fake``
   among the providers, a JSON-serialisable description and output schema;
2. for every input kind it accepts: the result validates against the schema,
   carries the method's version, survives a JSON round trip, and is identical
   when computed again by a fresh runner without cache (determinism);
3. typed errors: empty, corrupt and wrongly typed inputs, inputs of a kind it
   does not accept, and no input at all raise ``InvalidInputError``;
4. for a method placed in the pipeline (``applies_to``): what the pipeline
   would give it (``pipeline_inputs`` on a sample picture, item or brand, its
   needs computed first on the fake provider the same way) gives a valid result.

Pass ``providers=("fake", "local")`` to also check schema validity on ``local``.
"""

from __future__ import annotations

import asyncio
import json
import math
from functools import lru_cache
from typing import Any, Iterable

from ai_methods.audio import SAMPLE_RATE, wav_bytes
from ai_methods.errors import InvalidInputError
from ai_methods.images import encode_png
from ai_methods.inputs import AUDIO, FRAMES, IMAGE, KINDS, RESULTS, TEXT
from ai_methods.method import AIMethod, MethodResult
from ai_methods.placement import BRAND, ITEM, PICTURE, Target

SAMPLE_TEXT = "Fresh coffee every morning. Visit our store today and save twenty percent."


@lru_cache(maxsize=None)
def sample_png(variant: int = 0) -> bytes:
    """A small PNG with two colour blocks and a word; ``variant`` changes the colours."""
    from PIL import Image, ImageDraw

    colours = [((200, 40, 40), (250, 250, 250)), ((30, 80, 200), (250, 220, 40)), ((20, 120, 60), (240, 240, 240))]
    left, right = colours[variant % len(colours)]
    im = Image.new("RGB", (160, 96), left)
    draw = ImageDraw.Draw(im)
    draw.rectangle([80, 0, 159, 95], fill=right)
    draw.text((10, 40), f"SALE {variant}", fill=(0, 0, 0))
    return encode_png(im)


@lru_cache(maxsize=None)
def sample_wav(seconds: float = 1.0, freq: float = 440.0) -> bytes:
    """A 16 kHz mono WAV tone (no speech: enough to exercise decoding and timing)."""
    import numpy as np

    rate = SAMPLE_RATE
    samples = [int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(seconds * rate))]
    return wav_bytes(np.array(samples, dtype=np.int16), rate)


def sample_results() -> list[dict[str, Any]]:
    """Two items' earlier results, in the shape ``summarize_brand`` reads."""
    return [
        {
            "item_id": "item-1",
            "ocr_text": {"text": "FRESH COFFEE\nSAVE 20% TODAY", "lines": [
                {"text": "FRESH COFFEE", "confidence": 0.97}, {"text": "SAVE 20% TODAY", "confidence": 0.94}]},
            "dominant_colors": {"colors": [{"hex": "#5a3214", "rgb": [90, 50, 20], "share": 0.8, "name": "brown"}]},
            "detect_faces": {"count": 0, "faces": [], "width": 640, "height": 360},
        },
        {
            "item_id": "item-2",
            "transcribe_speech": {"text": "fresh coffee every morning visit our store today"},
            "ocr_text": {"text": "VISIT OUR STORE", "lines": [{"text": "VISIT OUR STORE", "confidence": 0.9}]},
        },
    ]  # fmt: skip


def sample_input(kind: str) -> Any:
    """A valid input of ``kind``."""
    return {
        IMAGE: lambda: sample_png(0),
        FRAMES: lambda: [sample_png(0), sample_png(1)],
        AUDIO: lambda: sample_wav(),
        TEXT: lambda: SAMPLE_TEXT,
        RESULTS: sample_results,
    }[kind]()


def bad_inputs(kind: str) -> list[tuple[str, Any]]:
    """``(label, value)`` pairs that must raise ``InvalidInputError`` as ``kind``."""
    return {
        IMAGE: [("empty bytes", b""), ("not an image", b"this is not an image"), ("a str", "image.png"), ("an int", 7)],
        FRAMES: [("empty list", []), ("a corrupt frame", [sample_png(0), b"junk"]), ("bytes, not a list", b"junk")],
        AUDIO: [
            ("empty bytes", b""),
            ("not audio", b"RIFF....not really a wav file at all"),
            ("missing file", "/nonexistent/a.wav"),
        ],
        TEXT: [("empty", ""), ("blank", "   \n"), ("bytes", b"text"), ("None-like number", 3.5)],
        RESULTS: [("empty list", []), ("list of str", ["not an object"]), ("a str", "results")],
    }[kind]


def _runner(fake: Any = None, local: Any = None):
    from ai_methods.calls import MethodRunner
    from ai_methods.providers.fake import FakeProvider
    from ai_methods.settings import AISettings

    return MethodRunner(AISettings(), cache=None, fake=fake or FakeProvider(), local=local)


async def _expect_invalid(runner: Any, method: AIMethod, provider: str, what: str, **inputs: Any) -> None:
    try:
        await runner.run(method, provider=provider, **inputs)
    except InvalidInputError:
        return
    except Exception as exc:  # noqa: BLE001 - the contract is about the type
        raise AssertionError(
            f"{method.name}: {what} raised {type(exc).__name__} ({exc}), not InvalidInputError"
        ) from exc
    raise AssertionError(f"{method.name}: {what} was accepted; it must raise InvalidInputError")


def _check_result(method: AIMethod, result: MethodResult, provider: str) -> None:
    assert isinstance(result, MethodResult), f"{method.name}: returned {type(result).__name__}"
    assert result.method == method.name and result.version == method.version, (
        f"{method.name}: wrong name/version in result"
    )
    assert result.provider == provider and result.model, f"{method.name}: provider/model missing from result"
    assert len(result.input_hash) == 64, f"{method.name}: input_hash is not a sha256"
    assert method.validate_output(result.output) == result.output, f"{method.name}: output changes when re-validated"
    assert json.loads(json.dumps(result.output)) == result.output, f"{method.name}: output is not plain JSON"
    assert result.cost_usd >= 0 and result.latency_ms >= 0


async def acheck_method_contract(
    method: AIMethod, *, providers: Iterable[str] = ("fake",), local: Any = None
) -> list[str]:
    """The contract, awaitable (from async tests). Returns the checks that ran; raises ``AssertionError``."""
    checks: list[str] = []
    assert isinstance(method, AIMethod), f"{method!r} is not an AIMethod instance"
    description = method.describe()
    json.dumps(description)
    assert description["name"] == method.name and description["version"] == method.version
    assert isinstance(method.schema_json(), dict) and method.schema_json(), f"{method.name}: empty output schema"
    assert "fake" in method.providers, (
        f"{method.name}: must support the fake provider (tests of the pipeline rely on it)"
    )
    assert set(method.accepts) <= set(KINDS)
    checks.append("attributes")

    for provider in providers:
        runner = _runner(local=local)
        other = _runner(local=local)
        try:
            for kind in method.accepts:
                result = await runner.run(method, provider=provider, **{kind: sample_input(kind)})
                _check_result(method, result, provider)
                assert result.cached is False
                checks.append(f"{provider}:{kind}:schema")
                if provider == "fake":
                    again = await other.run(method, provider=provider, **{kind: sample_input(kind)})
                    assert again.output == result.output, f"{method.name}: fake output differs for the same {kind}"
                    assert again.input_hash == result.input_hash
                    checks.append(f"fake:{kind}:deterministic")
            for kind in method.accepts:
                for label, value in bad_inputs(kind):
                    await _expect_invalid(runner, method, provider, f"{kind} = {label}", **{kind: value})
                checks.append(f"{provider}:{kind}:invalid")
            for kind in (k for k in KINDS if k not in method.accepts):
                await _expect_invalid(
                    runner, method, provider, f"an input of kind {kind}", **{kind: sample_input(kind)}
                )
            await _expect_invalid(runner, method, provider, "no input at all")
            checks.append(f"{provider}:wrong-kind")
            if method.applies_to is not None:
                checks.append(await _check_placed(runner, method, provider))
        finally:
            await runner.aclose()
            await other.aclose()
    return checks


async def _check_placed(runner: Any, method: AIMethod, provider: str) -> str:
    """Run ``method`` on what the pipeline would give it at a sample target; returns the check's name."""
    # The fake provider's outputs vary with the picture: the first sample where the condition holds.
    for variant in range(3):
        target = await sample_target(method, runner, variant)
        if method.condition is None or method.condition(target):
            break
    else:
        return f"{provider}:pipeline:condition-false-on-samples"
    inputs = method.pipeline_inputs(target)
    assert inputs, f"{method.name}: pipeline_inputs gave nothing on a sample {method.applies_to} with its needs met"
    _check_result(method, await runner.run(method, provider=provider, **inputs), provider)
    return f"{provider}:pipeline"


async def sample_target(method: AIMethod, runner: Any, variant: int = 0, _memo: dict[str, Any] | None = None) -> Target:
    """A sample ``Target`` for ``method``'s scope with the outputs of its needs computed first, each on the
    fake provider from its own ``pipeline_inputs``: one still image (``sample_png(variant)``) whose item's audio is
    ``sample_wav``, in a one-item brand. A need that gives nothing is absent, as in the pipeline."""
    from ai_methods.registry import get_method

    memo = {} if _memo is None else _memo
    scopes: dict[str, dict[str, Any]] = {PICTURE: {}, ITEM: {}, BRAND: {}}
    for name in method.needs:
        if name not in memo:
            need = get_method(name)
            need_target = await sample_target(need, runner, variant, memo)
            inputs = None
            if need.condition is None or need.condition(need_target):
                inputs = need.pipeline_inputs(need_target)
            memo[name] = (await runner.run(need, provider="fake", **inputs)).output if inputs else None
        if memo[name] is not None:
            scopes[get_method(name).applies_to or PICTURE][name] = memo[name]
    if method.applies_to == PICTURE:
        return Target(PICTURE, media_type="image", unit="image", picture=sample_png(variant),
                      outputs={**scopes[PICTURE], **scopes[ITEM]})  # fmt: skip
    if method.applies_to == ITEM:
        per_unit = {n: [{"frame_index": 0, "t_s": 0.0, "output": o}] for n, o in scopes[PICTURE].items()}
        return Target(ITEM, media_type="video", has_audio=True, media=sample_wav(), outputs=scopes[ITEM],  # type: ignore[arg-type]
                      unit_outputs=per_unit)  # fmt: skip
    item = {"item_id": "sample-item", "sha256": "0" * 64, "media_type": "image", "outputs": scopes[ITEM],
            "units": [{"unit": "image", "frame_index": None, "t_s": None, "outputs": scopes[PICTURE]}]}  # fmt: skip
    return Target(BRAND, brand="sample-brand", items=(item,), outputs=scopes[BRAND])


def check_method_contract(method: AIMethod, *, providers: Iterable[str] = ("fake",), local: Any = None) -> list[str]:
    """The contract, from a plain (sync) test. In async code, ``await acheck_method_contract(...)``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(acheck_method_contract(method, providers=providers, local=local))
    raise RuntimeError(
        "check_method_contract() was called inside an event loop; await acheck_method_contract() instead"
    )
