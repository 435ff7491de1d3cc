"""A chat model's brand summary over every item, however many: summaries of chunks, merged.

A model reads at most ``max_chars`` of digest per call. When the items' digest
rows fit, one call reads them all (the prompt the caller wrote). When they do
not, the rows are cut into chunks that fit, each chunk is summarised into the
same draft schema, and the drafts are merged by further calls — in rounds, so
the merge input fits too — until one draft stands for every item. Every call's
usage is recorded on the context, so the method's cost is the sum of them all.
"""

from __future__ import annotations

import json
from typing import Callable, TypeVar

from pydantic import BaseModel

from ai_methods.builtin.remote_chat import ask_json
from ai_methods.method import CallContext

M = TypeVar("M", bound=BaseModel)


def pack(rows: list[str], max_chars: int) -> list[list[str]]:
    """Consecutive rows grouped so each group's joined length (with newlines) is at most ``max_chars``.

    A single row longer than ``max_chars`` is cut to fit (rows are digests of
    one item; its start carries the item id). Every row lands in exactly one group.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    chunks: list[list[str]] = []
    size = 0
    for row in rows:
        row = row[:max_chars]
        if not chunks or size + len(row) + 1 > max_chars:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += len(row) + 1
    return chunks


async def draft_every_item(
    ctx: CallContext,
    draft: type[M],
    rows: list[str],
    *,
    system: str,
    whole_prompt: Callable[[str], str],
    part_prompt: Callable[[int, int, int, str], str],
    merge_prompt: Callable[[int, int, str], str],
    max_chars: int,
    max_tokens: int,
) -> M:
    """One ``draft`` covering every row.

    ``whole_prompt(digest)`` when everything fits in one call;
    ``part_prompt(first, last, total, digest)`` for items ``first``–``last``
    (1-based) of ``total``; ``merge_prompt(parts, total, drafts_as_json_lines)``
    to merge drafts. Raises what ``ask_json`` raises.
    """
    chunks = pack(rows, max_chars)
    if len(chunks) <= 1:
        return await ask_json(ctx, draft, system=system, prompt=whole_prompt("\n".join(rows)), max_tokens=max_tokens)
    total, first, drafts = len(rows), 1, []
    for chunk in chunks:
        last = first + len(chunk) - 1
        prompt = part_prompt(first, last, total, "\n".join(chunk))
        drafts.append(await ask_json(ctx, draft, system=system, prompt=prompt, max_tokens=max_tokens))
        first = last + 1
    while len(drafts) > 1:  # merge rounds: each round's input fits one call
        groups = pack([json.dumps(d.model_dump(), ensure_ascii=False) for d in drafts], max_chars)
        if len(groups) == len(drafts) and len(groups) > 1:
            groups = [sum(groups[i : i + 2], []) for i in range(0, len(groups), 2)]  # drafts too long: pair them anyway
        drafts = [
            await ask_json(ctx, draft, system=system, prompt=merge_prompt(len(g), total, "\n".join(g)),
                           max_tokens=max_tokens)  # fmt: skip
            for g in groups
        ]
    return drafts[0]
