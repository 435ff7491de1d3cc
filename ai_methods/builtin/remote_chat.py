"""Asking a remote chat model for a JSON object and checking it against a draft schema."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ai_methods.errors import BadResponseError
from ai_methods.method import CallContext, first_schema_error, inline_refs

M = TypeVar("M", bound=BaseModel)

HONESTY = (
    "Describe only what is visible or audible in the material given. Never guess brand names, "
    "people's identities or text you cannot read. Answer with one JSON object matching the schema, nothing else."
)


@functools.cache
def _draft_schema(draft: type[BaseModel]) -> dict[str, Any]:
    # pydantic builds a JSON schema in about a millisecond, on the event loop: once per draft class.
    return inline_refs(draft.model_json_schema())


async def ask_json(
    ctx: CallContext,
    draft: type[M],
    *,
    system: str,
    prompt: str,
    images: list[bytes] | None = None,
    max_tokens: int = 1024,
) -> M:
    """Call ``chat_json`` on ``ctx.client`` with ``draft``'s schema; record usage; parse the reply."""
    reply = await ctx.client.chat_json(
        system=f"{system}\n\n{HONESTY}",
        prompt=prompt,
        images=list(images or []),
        schema=_draft_schema(draft),
        max_tokens=max_tokens,
    )
    ctx.add_usage(reply.usage, reply.model)
    try:
        return draft.model_validate(reply.data)
    except ValidationError as exc:
        raise BadResponseError(
            f"{ctx.method} on {ctx.provider}: the model's JSON does not match the schema {first_schema_error(exc)}"
        ) from exc
