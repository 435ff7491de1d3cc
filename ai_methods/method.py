"""``AIMethod``: the one interface between people who write methods and people who run them.

A method is a small class with capability attributes and exactly one abstract
method, ``compute``. The base class does the rest: input validation and hashing,
output validation against the declared schema, and routing every call through
the call path (``MethodRunner``), which owns retries, limits, timeouts, the
cache and the accounting.

    class Shout(AIMethod):
        name = "shout"
        version = "1"
        accepts = (TEXT,)
        output_schema = ShoutOutput            # a pydantic model, or a JSON Schema dict
        providers = ("local", "fake")

        async def compute(self, inputs, ctx):
            return {"text": inputs.text.upper()}

    result = await Shout()(text="hello", provider="local")
"""

from __future__ import annotations

import inspect
import random
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from pydantic import BaseModel, ValidationError

from ai_methods.errors import BadResponseError, InvalidInputError, ProviderUnavailableError
from ai_methods.inputs import AUDIO, FRAMES, IMAGE, KINDS, RESULTS, TEXT, Inputs, prepare_inputs
from ai_methods.placement import BRAND, ITEM, PICTURE, SCOPES, Condition, Target
from ai_methods.settings import BUILTIN_PROVIDERS
from ai_methods.usage import Usage

if TYPE_CHECKING:  # pragma: no cover
    from ai_methods.calls import MethodRunner
    from ai_methods.providers.base import ModelClient
    from ai_methods.providers.fake import FakeProvider
    from ai_methods.providers.local import LocalProvider

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REMOTE_PRIMITIVES = ("chat_json", "embed_text", "embed_image", "transcribe")
FAKE_MODEL = "fake-v1"


@dataclass(frozen=True)
class MethodResult:
    """One method's answer for one input, with where it came from and what it cost."""

    method: str
    version: str
    provider: str
    model: str
    output: dict[str, Any]
    usage: Usage
    cost_usd: float
    cached: bool
    latency_ms: float
    input_hash: str

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (journals, CLI ``--json``, Parquet columns)."""
        return {
            "method": self.method,
            "version": self.version,
            "provider": self.provider,
            "model": self.model,
            "output": self.output,
            "usage": self.usage.as_dict(),
            "cost_usd": self.cost_usd,
            "cached": self.cached,
            "latency_ms": self.latency_ms,
            "input_hash": self.input_hash,
        }


@dataclass
class CallContext:
    """What ``compute`` may use for one attempt: the provider object and a usage/model sink."""

    method: str
    provider: str
    model: str
    input_hash: str
    backend: Any = field(repr=False)
    usage: Usage = field(default_factory=Usage)

    @property
    def kind(self) -> str:
        """``"local"``, ``"fake"`` or ``"remote"``."""
        return self.provider if self.provider in ("local", "fake") else "remote"

    @property
    def local(self) -> "LocalProvider":
        if self.provider != "local":
            raise ProviderUnavailableError(
                f"{self.method}: asked for the local engines while running on {self.provider}"
            )
        return self.backend

    @property
    def fake(self) -> "FakeProvider":
        if self.provider != "fake":
            raise ProviderUnavailableError(
                f"{self.method}: asked for the fake provider while running on {self.provider}"
            )
        return self.backend

    @property
    def client(self) -> "ModelClient":
        if self.kind != "remote":
            raise ProviderUnavailableError(f"{self.method}: asked for a model client while running on {self.provider}")
        return self.backend

    def add_usage(self, usage: Usage, model: str | None = None) -> None:
        """Record what a provider reply consumed (and which model actually answered)."""
        self.usage = self.usage + usage
        if model:
            self.model = model

    def rng(self, salt: str = "") -> random.Random:
        """A generator seeded by the method name and input hash: the fake provider's determinism."""
        return random.Random(f"{self.method}\0{self.input_hash}\0{salt}")


class AIMethod(ABC):
    """Base of every method. Subclasses set the attributes and implement ``compute``.

    Attributes:
        name: registry name, ``snake_case``.
        version: bump whenever the output for the same input changes (drives cache keys and staleness).
        accepts: the input kinds it takes (``image``, ``frames``, ``audio``, ``text``, ``results``).
        output_schema: a pydantic model class or a JSON Schema dict; every output is validated against it.
        providers: the providers it runs on.
        cost_unit: what it is billed by, a hint for humans (``image``, ``audio_minute``, ``1k_tokens``).
        remote_primitive: the ``ModelClient`` primitive it calls on remote providers (for the model id).
        local_model: the model/algorithm id reported and cached for the ``local`` provider.
        exclusive_inputs: when true (default), a call gives exactly one of ``accepts``.
        applies_to: where the brand pipeline runs it (``picture``, ``item`` or ``brand``, see
            ``ai_methods.placement``); None: only when called (the harness, other code).
        needs: names of methods whose outputs it reads; the engine runs them first.
        condition: a ``Condition`` on the target; the method is skipped where it is false.
        search_field: a text field of the output worth finding by text search: the engine embeds it
            (``embed_text``) and search shows the method as the matched text's source.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    accepts: ClassVar[tuple[str, ...]]
    output_schema: ClassVar[type[BaseModel] | dict[str, Any]]
    providers: ClassVar[tuple[str, ...]] = BUILTIN_PROVIDERS
    cost_unit: ClassVar[str] = "request"
    remote_primitive: ClassVar[str] = "chat_json"
    local_model: ClassVar[str] = "local"
    exclusive_inputs: ClassVar[bool] = True
    applies_to: ClassVar[str | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    condition: ClassVar[Condition | None] = None
    search_field: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isabstract(cls):
            return
        where = f"{cls.__module__}.{cls.__qualname__}"
        for attr in ("name", "version", "accepts", "output_schema"):
            if not hasattr(cls, attr):
                raise TypeError(f"{where} must set {attr!r}")
        if not isinstance(cls.name, str) or not _NAME.match(cls.name):
            raise TypeError(f"{where}.name={cls.name!r} must be snake_case")
        if not isinstance(cls.version, str) or not cls.version.strip():
            raise TypeError(f"{where}.version must be a non-empty str")
        bad = [k for k in cls.accepts if k not in KINDS]
        if not cls.accepts or bad:
            raise TypeError(f"{where}.accepts={cls.accepts!r} must be a non-empty tuple of {KINDS}")
        schema = cls.output_schema
        if not (isinstance(schema, dict) or (inspect.isclass(schema) and issubclass(schema, BaseModel))):
            raise TypeError(f"{where}.output_schema must be a pydantic model class or a JSON Schema dict")
        if cls.remote_primitive not in REMOTE_PRIMITIVES:
            raise TypeError(f"{where}.remote_primitive must be one of {REMOTE_PRIMITIVES}")
        if not cls.providers:
            raise TypeError(f"{where}.providers must not be empty")
        if cls.applies_to is not None and cls.applies_to not in SCOPES:
            raise TypeError(f"{where}.applies_to={cls.applies_to!r} must be one of {SCOPES} or None")
        if not isinstance(cls.needs, tuple) or not all(isinstance(n, str) and _NAME.match(n) for n in cls.needs):
            raise TypeError(f"{where}.needs={cls.needs!r} must be a tuple of method names")
        if cls.name in cls.needs:
            raise TypeError(f"{where}.needs names the method itself")
        if cls.needs and cls.applies_to is None:
            raise TypeError(f"{where}.needs is set but applies_to is not: needs only mean something in the pipeline")
        if cls.condition is not None and not isinstance(cls.condition, Condition):
            raise TypeError(f"{where}.condition must be an ai_methods.placement.Condition")
        if cls.search_field is not None and not isinstance(cls.search_field, str):
            raise TypeError(f"{where}.search_field must be the name of a text field of the output")

    @abstractmethod
    async def compute(self, inputs: Inputs, ctx: CallContext) -> BaseModel | dict[str, Any]:
        """Compute the output for validated ``inputs`` on ``ctx.provider``.

        Branch on ``ctx.kind`` (``local``/``fake``/``remote``); use ``ctx.local``,
        ``ctx.fake.rng`` or ``ctx.client``; report remote usage with
        ``ctx.add_usage``. Raise ``InvalidInputError`` for inputs the provider
        cannot read and ``BadResponseError`` for replies you cannot use.
        """

    # ----- what the base class adds -------------------------------------------------

    def params(self) -> Mapping[str, Any]:
        """Settings of this instance that change its output; folded into the input hash."""
        return {}

    def prepare(self, *args: Any, **given: Any) -> Inputs:
        """Validate and hash inputs. One positional input is bound to the only kind accepted,
        or inferred from its type (bytes → image, str → text, list of bytes → frames, list of dicts → results)."""
        if args:
            if len(args) > 1:
                raise InvalidInputError(f"{self.name}: give inputs by keyword ({', '.join(self.accepts)})")
            kind = self._infer_kind(args[0])
            if kind in given:
                raise InvalidInputError(f"{self.name}: {kind} given both positionally and by keyword")
            given = {**given, kind: args[0]}
        return prepare_inputs(self.name, self.accepts, given, self.params(), self.exclusive_inputs)

    def _infer_kind(self, value: Any) -> str:
        if len(self.accepts) == 1:
            return self.accepts[0]
        if isinstance(value, (bytes, bytearray, memoryview)):
            guess = IMAGE if IMAGE in self.accepts else AUDIO
        elif isinstance(value, str):
            guess = TEXT
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            guess = RESULTS
        elif isinstance(value, (list, tuple)):
            guess = FRAMES
        else:
            guess = ""
        if guess not in self.accepts:
            raise InvalidInputError(
                f"{self.name}: cannot tell which input a {type(value).__name__} is; pass one of {', '.join(self.accepts)} by keyword"
            )
        return guess

    def pipeline_inputs(self, target: Target) -> dict[str, Any] | None:
        """The inputs the brand pipeline calls this method with at ``target``; None: nothing to run on.

        Default, by ``accepts`` order (one kind when ``exclusive_inputs``): ``image`` is the picture
        (picture scope); ``audio`` the item's media file (item scope); ``text`` the ``text`` fields of
        the needed outputs; ``results`` the needed outputs: ``[{"method", "output"}]`` for needs of
        the same or a wider scope, ``[{"method", "frame_index", "t_s", "output"}]`` for picture-level
        needs of an item, and at brand scope the items (``Target.items``) followed by
        ``{"cycle": method, "output": …}`` for each earlier brand-level method needed. Override it
        to shape the input yourself (``summarize_brand`` folds each video's frames into one entry).
        """
        offered: dict[str, Any] = {}
        if target.scope == PICTURE and target.picture is not None:
            offered[IMAGE] = target.picture
        if target.scope == ITEM and target.media is not None:
            offered[AUDIO] = target.media
        if self.needs:
            offered[TEXT] = target.text() or None
        if target.scope == BRAND:
            results = [*target.items, *({"cycle": m, "output": o} for m, o in target.outputs.items())]
        else:
            results = [{"method": m, "output": o} for m, o in target.outputs.items()]
            results += [
                {"method": m, "frame_index": u.get("frame_index"), "t_s": u.get("t_s"), "output": u["output"]}
                for m, found in target.unit_outputs.items()
                for u in found
            ]
        offered[RESULTS] = results or None
        present = [kind for kind in self.accepts if offered.get(kind) is not None]
        if not present:
            return None
        return {present[0]: offered[present[0]]} if self.exclusive_inputs else {k: offered[k] for k in present}

    def supports(self, provider: str) -> bool:
        return provider in self.providers

    def model_for(self, provider: str, backend: Any) -> str:
        """The model id for the cache key, known before the call."""
        if provider == "local":
            return self.local_model
        if provider == "fake":
            return FAKE_MODEL
        return backend.model_for(self.remote_primitive)

    def schema_json(self) -> dict[str, Any]:
        """The output schema as JSON Schema (for docs, the harness and remote prompts)."""
        schema = self.output_schema
        return dict(schema) if isinstance(schema, dict) else schema.model_json_schema()

    def prompt_schema(self) -> dict[str, Any]:
        """The output schema with every ``$ref`` inlined: what a chat model is shown."""
        return inline_refs(self.schema_json())

    def validate_output(self, raw: Any) -> dict[str, Any]:
        """Check ``raw`` against ``output_schema``; return plain JSON data or raise ``BadResponseError``."""
        schema = self.output_schema
        if isinstance(schema, dict):
            import jsonschema

            data = raw.model_dump(mode="json") if isinstance(raw, BaseModel) else raw
            try:
                jsonschema.validate(data, schema)
            except jsonschema.ValidationError as exc:
                raise BadResponseError(f"{self.name}: output does not match its schema: {exc.message}") from exc
            return data
        try:
            data = raw.model_dump() if isinstance(raw, BaseModel) else raw
            return schema.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            raise BadResponseError(
                f"{self.name}: output does not match its schema {first_schema_error(exc)} ({exc.error_count()} error(s))"
            ) from exc

    def describe(self) -> dict[str, Any]:
        """Name, version, inputs, providers and output schema, for listings."""
        doc = inspect.getdoc(type(self)) or ""
        return {
            "name": self.name,
            "version": self.version,
            "description": doc.split("\n\n")[0].replace("\n", " "),
            "inputs": list(self.accepts),
            "providers": list(self.providers),
            "cost_unit": self.cost_unit,
            "applies_to": self.applies_to,
            "needs": list(self.needs),
            "condition": self.condition.description if self.condition else None,
            "search_field": self.search_field,
            "output_schema": self.schema_json(),
        }

    async def __call__(
        self, *args: Any, provider: str | None = None, context: "MethodRunner | None" = None, **inputs: Any
    ) -> MethodResult:
        """Run this method through the call path. Without ``context``, a runner is built from the
        process environment for this one call (the outermost entry)."""
        if context is not None:
            return await context.run(self, *args, provider=provider, **inputs)
        from ai_methods.calls import MethodRunner

        async with MethodRunner.from_env() as runner:
            return await runner.run(self, *args, provider=provider, **inputs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version}>"


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve local ``#/$defs/...`` references (pydantic emits them for nested models)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                target = walk(defs[ref.split("/")[-1]])
                rest = {k: walk(v) for k, v in node.items() if k != "$ref"}
                return {**target, **rest}
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def first_schema_error(exc: ValidationError) -> str:
    """Where and why ``exc`` first failed, as ``at <field path>: <message>`` (``(root)`` for the whole object)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    return f"at {where}: {first.get('msg')}"
