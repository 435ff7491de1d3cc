"""The first AI cycle: every stored item through the pipeline's methods, in one event loop.

Which methods run, and where, is the ``PipelinePlan`` (``pipeline_plan``),
built from what each method declares (``ai_methods.placement``); this module
only knows how to walk media:

- image → one ``picture``: the picture-level methods (``ocr_text``,
  ``caption``, ``labels``, ``detect_faces``, ``dominant_colors``,
  ``embed_image``, ``embed_text`` of caption + OCR, and any plugged one);
- video, or animated image (GIF/WebP/APNG) → the frames shown at
  ``t_i = i·duration/(n−1)`` from the start of the picture, ``embed_image`` of
  each, frames too similar to the last kept one dropped, the picture-level
  methods on each kept frame;
- every item → the item-level methods whose condition holds
  (``transcribe_speech`` when it has sound, each transcript segment then
  embedded as text), after the picture-level results they need.

Each method starts as soon as what it needs is done: all steps of all items
in flight are in flight together; the ``MethodRunner`` bounds calls per
provider, a semaphore bounds items being decoded, and each finished step is
appended to the item's journal, so a re-run repeats only unfinished steps and
completed AI calls are not paid again. A method with a ``search_field`` has
that text embedded (``embed_text``) for text search. The journal reaches the
store every ``journal_sync_steps`` steps while the item is in progress (and
when it is done), so another machine resuming the brand loses at most that
many steps of it; their AI results are in the shared result cache anyway.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import uuid
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from ad_assets.engine.item_journal import ItemJournal
from ad_assets.engine.pipeline_plan import PipelinePlan, plan_for
from ad_assets.engine.video_frames import (
    DEFAULT_FRAME_COUNT,
    DistinctFrames,
    SampledFrame,
    VideoDecodeError,
    iter_frames,
)
from ai_methods.builtin.embeddings import caption_and_ocr_text
from ai_methods.calls import MethodRunner
from ai_methods.errors import AIMethodError
from ai_methods.inputs import ImageInput, image_input
from ai_methods.method import AIMethod
from ai_methods.placement import ITEM, PICTURE, Target
from resources.media_store import MediaStore, StoreError

IMAGE_STEPS = ("ocr_text", "caption", "labels", "detect_faces", "dominant_colors")  # the builtin picture methods
EMBED_IMAGE, EMBED_TEXT, TRANSCRIBE = "embed_image", "embed_text", "transcribe_speech"
ENGINE_VERSION = "3"  # bump when the engine's shape changes what it produces (2: media as displayed; 3: planned methods)


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of the per-item pipeline."""

    frame_count: int = DEFAULT_FRAME_COUNT
    dedupe_threshold: float = 0.95
    items_in_flight: int | None = None  # None: items_to_fill(runner), enough to keep every provider busy
    decode_workers: int = 2  # videos decoded at once, and pictures read at once
    # Items loading at once: copying their media from the store, opening their journal. Loads
    # started together finish together: with every item in flight copying at once, the first
    # item waited ~0.4 s for its picture; opening 128 journals at once, ~0.1 s (bench/bench_ai_stage.py).
    copies_in_flight: int = 8
    frame_max_side: int = 1024
    # Steps between copies of an in-progress journal to the store: the most a
    # machine lost mid-item costs whoever resumes it (one PUT per this many AI calls).
    journal_sync_steps: int = 4


@dataclass
class UnitAnalysis:
    """An image, or one kept frame of a video, with each method's result (``MethodResult.as_dict()``)."""

    unit: str  # "image" | "frame"
    frame_index: int | None
    t_s: float | None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ``embed_text`` results of the ``search_field`` of methods that declare one, by method (with ``text``).
    text_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def output(self, method: str) -> dict[str, Any]:
        """The method's output, or ``{}`` when it failed or did not run."""
        return (self.results.get(method) or {}).get("output") or {}


@dataclass
class ItemAnalysis:
    """Everything the first cycle found for one media item."""

    sha256: str
    url: str
    media_type: str
    storage_key: str
    units: list[UnitAnalysis] = field(default_factory=list)
    segment_vectors: list[dict[str, Any] | None] = field(default_factory=list)
    # Item-level methods' results by method (``transcribe_speech``'s included: ``transcript_result``).
    item_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    text_vectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # item-level search texts, by method
    frames_sampled: int = 0
    frames_kept: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps_resumed: int = 0

    @property
    def transcript_result(self) -> dict[str, Any] | None:
        """``transcribe_speech``'s result, when it ran and succeeded."""
        return self.item_results.get(TRANSCRIBE)

    @property
    def transcript(self) -> dict[str, Any] | None:
        """The transcript (``transcribe_speech``'s output): ``text``, ``segments``, ``words``."""
        return (self.transcript_result or {}).get("output")

    @property
    def status(self) -> str:
        """``analysed``, ``partial`` (some methods failed) or ``failed`` (nothing usable)."""
        if not any(unit.results for unit in self.units) and not self.item_results:
            return "failed"
        return "partial" if self.failures else "analysed"


def items_to_fill(runner: MethodRunner, methods: Iterable[str]) -> int:
    """Items in flight that keep the busiest provider's slots full (``methods``: those the plan runs on
    items): an image holds about two calls at a time (its first calls, then ``embed_text``), less while
    its local work runs, so twice the largest concurrency, within 16..256 (an item in flight holds its
    bytes and decoded picture)."""
    return min(256, max(16, 2 * runner.max_concurrency(tuple(methods))))


def journal_store_key(sha256: str) -> str:
    """The item's finished journal, beside its media in the store."""
    return f"media/{sha256[:2]}/{sha256}.journal.jsonl"


def text_for_embedding(unit: UnitAnalysis) -> str:
    """What ``embed_text`` sees for a unit: its caption (when a model wrote it) and its OCR text
    (``ai_methods.builtin.embeddings.caption_and_ocr_text``)."""
    return caption_and_ocr_text({m: unit.output(m) for m in ("caption", "ocr_text")})


def search_text(method: AIMethod, output: dict[str, Any]) -> str:
    """The text of ``method``'s ``search_field`` in ``output`` (a list of strings joined by lines); "" when none."""
    value = output.get(method.search_field or "")
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value if isinstance(v, (str, int, float)))
    return value.strip() if isinstance(value, str) else ""


def _item_step_key(method: str) -> str:
    # Journals written before the plan named the transcript step "audio:…": kept, so they still resume.
    return f"audio:{method}" if method == TRANSCRIBE else f"item:{method}"


class _ItemRun:
    """One item's steps: journal lookups, calls, failures."""

    def __init__(
        self,
        runner: MethodRunner,
        journal: ItemJournal,
        item: ItemAnalysis,
        sync: Callable[[], Awaitable[None]] | None = None,
        sync_every: int = 0,
        needed: frozenset[str] = frozenset(),
    ) -> None:
        self.runner, self.journal, self.item = runner, journal, item
        self.sync, self.sync_every = sync, sync_every
        self.needed = needed  # methods whose outputs other steps of the item wait for: their calls go first
        self._syncing = asyncio.Lock()  # one copy at a time: an older snapshot must not land after a newer one

    async def step(self, key: str, method: str, *, critical: bool = False, **inputs: Any) -> dict[str, Any] | None:
        """Run ``method`` unless the journal already holds this step for the same version, provider and input.

        ``critical``: other steps wait for this one (as for a method in ``needed``): its call goes first.
        """
        m = self.runner.method(method)
        provider = self.runner.provider_for(method)
        prior = self.journal.get(key)
        if prior and prior.get("version") == m.version and prior.get("provider") == provider:
            # A step key names a position (``frame3``, ``image:embed_text``), not an input: after a
            # change of frame count or of an upstream method's output the same key holds other input.
            try:
                same_input = m.prepare(**inputs).input_hash == prior.get("input_hash")
            except AIMethodError:
                same_input = False  # the call below fails the same way and records why
            if same_input:
                self.item.steps_resumed += 1
                return prior
        try:
            priority = 0 if critical or method in self.needed else 1
            result = (await self.runner.run(method, priority=priority, **inputs)).as_dict()
        except AIMethodError as exc:
            self.item.failures.append({"method": method, "step": key, "cause": type(exc).__name__, "detail": str(exc)})
            return None
        self.journal.record(key, result)
        if self.sync is not None and self.sync_every and self.journal.unsynced >= self.sync_every:
            if not self._syncing.locked():  # a copy under way will be followed by the next one
                async with self._syncing:
                    await self.sync()
        return result


class _ItemWork:
    """One item's planned steps as tasks: each awaits what its method needs, then runs if its condition holds.

    Picture-level steps of one unit wait for that unit's needs (and the item's,
    for an item-level need); item-level steps wait for the item's needs and,
    for a picture-level need, for that method on every unit once the units are
    final (``close_units``). Every task is tracked, so a failing item cancels
    all of its steps.
    """

    def __init__(
        self, plan: PipelinePlan, run: _ItemRun, row: dict[str, Any], path: Path, reading: asyncio.Semaphore | None = None
    ) -> None:
        self.plan, self.run, self.item, self.path = plan, run, run.item, path
        self.reading = reading  # pictures being read at once (``BrandAnalyser``), None: unbounded
        self.row = row
        self.has_audio, self.animated = bool(row.get("has_audio")), bool(row.get("animated"))
        self.units: list[tuple[UnitAnalysis, dict[str, Any]]] = []
        self.item_steps: dict[str, Any] = {}
        self.units_final = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task] = []

    def track(self, coro: Awaitable[Any]) -> asyncio.Task:
        """A task of this item's, cancelled with the item (``cancel``)."""
        task = asyncio.ensure_future(coro)
        self.tasks.append(task)
        return task

    def _target(self, scope: str, **fields: Any) -> Target:
        return Target(scope, media_type=self.item.media_type, has_audio=self.has_audio, animated=self.animated, **fields)

    # ----- item level

    def start_item_methods(self) -> None:
        """Start the item-level steps (once); they run beside the pictures, waiting only for their needs."""
        if self.item_steps:
            return
        for method in self.plan.at(ITEM):
            self.item_steps[method.name] = self.track(self._item_step(method))

    async def _item_step(self, method: AIMethod) -> dict[str, Any] | None:
        outputs: dict[str, dict[str, Any]] = {}
        unit_outputs: dict[str, list[dict[str, Any]]] = {}
        for need in method.needs:
            if self.plan.scope_of(need) == ITEM:
                found = await self.item_steps[need]
                if found is not None:
                    outputs[need] = found["output"]
            else:  # a picture-level need: that method on every unit, in time order
                await asyncio.shield(self.units_final)
                results = [await steps[need] for _, steps in self.units]
                per_unit = [
                    {"frame_index": unit.frame_index, "t_s": unit.t_s, "output": r["output"]}
                    for (unit, _), r in zip(self.units, results)
                    if r is not None
                ]
                if per_unit:
                    unit_outputs[need] = per_unit
        target = self._target(ITEM, media=self.path, outputs=outputs, unit_outputs=unit_outputs)
        key = _item_step_key(method.name)
        inputs = self._inputs(method, target, key)
        if inputs is None:
            return None
        result = await self.run.step(key, method.name, **inputs)
        if result is None:
            return None
        self.item.item_results[method.name] = result
        if method.name == TRANSCRIBE:
            await self._transcript(result)
        if method.search_field:
            await self._search_text(method, result, key, self.item.text_vectors)
        return result

    async def _transcript(self, result: dict[str, Any]) -> None:
        """Embed each segment of the transcript (``result``) as text."""
        item = self.item
        segments = (result.get("output") or {}).get("segments", [])
        item.segment_vectors = list(
            await asyncio.gather(
                *(
                    self.run.step(f"audio:segment{i}:{EMBED_TEXT}", EMBED_TEXT, text=s["text"])
                    if s.get("text", "").strip()
                    else _none()
                    for i, s in enumerate(segments)
                )
            )
        )

    # ----- picture level

    def start_unit(
        self, prefix: str, index: int | None, t_s: float | None, image: bytes | Path,
        prefilled: dict[str, dict[str, Any] | None] | None = None,
    ) -> asyncio.Task[UnitAnalysis]:  # fmt: skip
        """Start the picture-level steps of one image or kept frame (``prefilled``: steps already run,
        a frame's ``embed_image`` for de-duplication); the task returns the finished unit."""
        unit = UnitAnalysis("frame" if index is not None else "image", index, t_s)
        picture = self.track(_shared_image(image, self.reading))
        steps: dict[str, Any] = {}
        for method in self.plan.at(PICTURE):
            if prefilled is not None and method.name in prefilled:
                steps[method.name] = self.track(_value(prefilled[method.name]))
            else:
                steps[method.name] = self.track(self._picture_step(method, prefix, unit, picture, steps))
        self.units.append((unit, steps))
        return self.track(self._finish_unit(unit, steps))

    async def _finish_unit(self, unit: UnitAnalysis, steps: dict[str, Any]) -> UnitAnalysis:
        results = await asyncio.gather(*steps.values())
        unit.results = {name: r for name, r in zip(steps, results) if r is not None}
        return unit

    async def _picture_step(
        self, method: AIMethod, prefix: str, unit: UnitAnalysis, picture: asyncio.Task, steps: dict[str, Any]
    ) -> dict[str, Any] | None:
        outputs: dict[str, dict[str, Any]] = {}
        for need in method.needs:
            if self.plan.scope_of(need) == PICTURE:
                found = await steps[need]
            else:  # an item-level need (the transcript): the item's steps start with its first picture
                self.start_item_methods()
                found = await self.item_steps[need]
            if found is not None:
                outputs[need] = found["output"]
        target = self._target(
            PICTURE, unit=unit.unit, frame_index=unit.frame_index, t_s=unit.t_s, picture=await picture, outputs=outputs
        )
        key = f"{prefix}:{method.name}"
        inputs = self._inputs(method, target, key)
        if inputs is None:
            return None
        result = await self.run.step(key, method.name, **inputs)
        if result is not None and method.search_field:
            await self._search_text(method, result, key, unit.text_vectors)
        return result

    def _inputs(self, method: AIMethod, target: Target, key: str) -> dict[str, Any] | None:
        """The method's inputs at ``target`` (``method_inputs``); a method's own code raising while choosing
        them (a plug-in's condition or ``pipeline_inputs``) is that step's failure, not the item's."""
        try:
            return method_inputs(method, target)
        except PlacementError as exc:
            self.item.failures.append({"method": method.name, "step": key, "cause": "InternalMethodError", "detail": str(exc)})
            return None

    def close_units(self) -> None:
        """No more units will start: item-level steps needing picture-level results may gather them."""
        if not self.units_final.done():
            self.units_final.set_result(None)

    async def _search_text(self, method: AIMethod, result: dict[str, Any], key: str, into: dict[str, Any]) -> None:
        text = search_text(method, result.get("output") or {})
        if text:
            found = await self.run.step(f"{key}:{EMBED_TEXT}", EMBED_TEXT, text=text)
            if found is not None:
                into[method.name] = {**found, "text": text}  # the text beside its vector, as embedding rows need it

    # ----- the whole item

    async def finish(self, units: list[asyncio.Task[UnitAnalysis]]) -> None:
        """Wait for every unit and item-level step; the item gets its units in order."""
        self.close_units()
        self.start_item_methods()
        self.item.units = list(await asyncio.gather(*units))
        await asyncio.gather(*self.item_steps.values())

    async def cancel(self) -> None:
        self.close_units()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class PlacementError(Exception):
    """A method's own placement code (its ``condition`` or ``pipeline_inputs``) raised; the message says which."""


def condition_holds(method: AIMethod, target: Target) -> bool:
    """Whether ``method`` applies at ``target`` (no condition: it does); ``PlacementError`` if the condition raises."""
    if method.condition is None:
        return True
    try:
        return bool(method.condition(target))
    except Exception as exc:  # plugged code
        raise PlacementError(
            f"{method.name}: its condition ({method.condition.description}) raised {type(exc).__name__}: {exc}"
        ) from exc


def placed_inputs(method: AIMethod, target: Target) -> dict[str, Any] | None:
    """``method.pipeline_inputs(target)``; ``PlacementError`` naming the hook if it raises."""
    try:
        return method.pipeline_inputs(target)
    except Exception as exc:  # plugged code
        raise PlacementError(f"{method.name}: pipeline_inputs raised {type(exc).__name__}: {exc}") from exc


def method_inputs(method: AIMethod, target: Target) -> dict[str, Any] | None:
    """The method's inputs at ``target``, or None where its condition is false or it has nothing to read.

    Raises ``PlacementError`` naming the method and the hook when the condition or
    ``pipeline_inputs`` raises (plugged code), so the caller records it as that step's failure.
    """
    return placed_inputs(method, target) if condition_holds(method, target) else None


async def _value(value: Any) -> Any:
    return value


class BrandAnalyser:
    """Runs the first AI cycle over a brand's stored items."""

    def __init__(
        self,
        runner: MethodRunner,
        store: MediaStore,
        *,
        cache_dir: Path,
        journal_dir: Path,
        config: AnalysisConfig = AnalysisConfig(),
        progress: Callable[[ItemAnalysis], None] | None = None,
        plan: PipelinePlan | None = None,
    ) -> None:
        self.runner, self.store, self.config = runner, store, config
        self.plan = plan if plan is not None else plan_for()
        self.cache_dir = cache_dir
        self.journal_dir = journal_dir
        self.progress = progress
        self.items_in_flight = config.items_in_flight or items_to_fill(runner, self.plan.names(PICTURE, ITEM))
        self._items = asyncio.Semaphore(self.items_in_flight)
        self._decode = asyncio.Semaphore(config.decode_workers)
        # Pictures read at once. The worker threads serve reads, request bodies and store copies
        # first come, first served: with every item in flight reading its picture at once (64-256
        # decodes of ~13 ms for a 1080² PNG), the first request body waited behind all of them
        # (~0.5-0.9 s of a 7 s run before the provider saw a request, bench/bench_ai_stage.py).
        self._reading = asyncio.Semaphore(config.decode_workers)
        self._copies: Counter[Path] = Counter()  # items using each local media copy right now
        self._loading = asyncio.Semaphore(config.copies_in_flight)
        # Calls whose outputs an item's later steps need wait less for the provider's slots (a
        # brand-level need does not count: the brand's cycles start after every item anyway).
        self._needed = frozenset(n for m in self.plan.at(PICTURE) + self.plan.at(ITEM) for n in m.needs)

    async def analyse(self, items: list[dict[str, Any]]) -> list[ItemAnalysis]:
        """Analyse every item (rows of ``raw_media`` with status ``ok``), all in flight together."""
        return list(await asyncio.gather(*(self._analyse_one(row) for row in items)))

    async def analyse_in_order(
        self, items: list[dict[str, Any]], sink: Callable[[ItemAnalysis], None], *, window: int | None = None
    ) -> int:
        """Analyse every item, handing each to ``sink`` in input order as soon as it and those before it are done.

        At most ``window`` items (default 4 × ``items_in_flight``) are started
        or waiting for an earlier one, so a brand of any size holds a bounded
        number of items in memory; the engine keeps nothing after ``sink``
        returns. Returns how many items were handed over.
        """
        window = window or max(4 * self.items_in_flight, 16)
        pending: dict[int, asyncio.Task[ItemAnalysis]] = {}
        handed = 0
        try:
            for i, row in enumerate(items):
                while len(pending) >= window:
                    sink(await pending.pop(handed))
                    handed += 1
                pending[i] = asyncio.create_task(self._analyse_one(row))
            while pending:
                sink(await pending.pop(handed))
                handed += 1
        finally:
            for task in pending.values():
                task.cancel()
            await asyncio.gather(*pending.values(), return_exceptions=True)
        return handed

    async def _analyse_one(self, row: dict[str, Any]) -> ItemAnalysis:
        item = ItemAnalysis(
            sha256=row["sha256"], url=row["url"], media_type=row["media_type"], storage_key=row["storage_key"]
        )
        async with self._items:
            path = journal = None
            try:
                async with self._loading:
                    path, journal = await self._load(item)
                run = _ItemRun(
                    self.runner, journal, item, lambda: self._keep_journal(journal, item, in_progress=True),
                    self.config.journal_sync_steps, self._needed,
                )
                work = _ItemWork(self.plan, run, row, path, self._reading)
                try:
                    if item.media_type == "audio":
                        await work.finish([])
                    elif item.media_type == "image" and not row.get("animated"):
                        work.start_item_methods()
                        await work.finish([work.start_unit("image", None, None, path)])
                    else:  # a video, or an animated image read like a short silent video
                        await self._video(work, path, row)
                except BaseException:
                    await work.cancel()
                    raise
                await self._keep_journal(journal, item)
            except (StoreError, VideoDecodeError, OSError) as exc:
                cause = getattr(exc, "cause", type(exc).__name__)
                item.failures.append({"method": "-", "step": "load", "cause": cause, "detail": str(exc)})
            except Exception as exc:  # a bug or an unforeseen input must not sink the other items
                item.failures.append(
                    {"method": "-", "step": "internal", "cause": type(exc).__name__, "detail": f"{type(exc).__name__}: {exc}"}
                )
            finally:
                self._drop_local_copy(path)
                if journal is not None:
                    journal.close()
        if self.progress is not None:
            self.progress(item)
        return item

    async def _video(self, work: _ItemWork, path: Path, row: dict[str, Any]) -> None:
        """Frames are embedded as they are decoded, judged in order, and each kept frame's picture
        steps start at once: decoding, embedding and the 2.5 s captions overlap instead of
        waiting for each other, and the item-level steps (the transcript) run beside all of it."""
        item = work.item
        loop = asyncio.get_running_loop()
        embedded: asyncio.Queue[tuple[SampledFrame, asyncio.Task] | None] = asyncio.Queue()
        stop = threading.Event()

        def on_frame(frame: SampledFrame) -> None:  # on the event loop, as each frame is decoded
            if stop.is_set():
                return  # the item failed or was cancelled while this frame was on its way
            # Once a frame decoded, the file is known to be readable media: a corrupt file
            # fails as one load failure, not also as a failed transcription.
            work.start_item_methods()
            # critical: whether the frame is kept, and so its picture steps, waits for this embedding
            step = work.run.step(f"frame{frame.index}:{EMBED_IMAGE}", EMBED_IMAGE, critical=True, image=frame.jpeg)
            task = work.track(step)
            embedded.put_nowait((frame, task))

        def decode() -> None:  # in a worker thread
            for frame in iter_frames(
                path, self.config.frame_count, max_side=self.config.frame_max_side, animated=bool(row.get("animated"))
            ):
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(on_frame, frame)

        async def decoding() -> None:
            try:
                async with self._decode:
                    await asyncio.to_thread(decode)
            finally:
                # Queued after every on_frame the thread scheduled, so it arrives last.
                loop.call_soon_threadsafe(embedded.put_nowait, None)

        decoder = work.track(decoding())
        rule = DistinctFrames(self.config.dedupe_threshold)
        units: list[asyncio.Task[UnitAnalysis]] = []
        sampled = 0
        try:
            while (entry := await embedded.get()) is not None:
                frame, embedding_task = entry
                sampled += 1
                embedding = await embedding_task
                # A frame whose embedding failed cannot be judged a duplicate: it is kept.
                if embedding is not None and not rule.keep(embedding["output"]["vector"], frame.signature):
                    continue
                units.append(work.start_unit(f"frame{frame.index}", frame.index, frame.t_s, frame.jpeg, {EMBED_IMAGE: embedding}))
            await decoder  # raises the VideoDecodeError, if decoding failed
            await work.finish(units)
        except BaseException:
            stop.set()
            raise
        item.frames_sampled, item.frames_kept = sampled, len(units)

    async def _load(self, item: ItemAnalysis) -> tuple[Path, ItemJournal]:
        """The item's media file and its journal, opened (``StoreError``/``OSError`` when it cannot load)."""
        if self.store.is_local:
            # One worker thread does it all (a stat of the media in place, the journal looked for here and
            # in the store, copied, opened): three hops and two stats on the event loop per item before.
            loaded = await asyncio.to_thread(self._load_in_place, item)
            if loaded is not None:
                return loaded
        path = await self._local_copy(item.storage_key)
        return path, await self._journal(item.sha256)

    def _load_in_place(self, item: ItemAnalysis) -> tuple[Path, ItemJournal] | None:
        """``_load`` for a local store whose files are read in place; None when the store gives no file in place."""
        path = self.store.file_in_place(item.storage_key)
        if path is None:
            return None
        journal_path = self.journal_dir / f"{item.sha256}.jsonl"
        if not journal_path.exists():
            # Another machine may have finished steps of this item: resume from the stored journal.
            stored = self.store.local_path(journal_store_key(item.sha256))
            if stored.is_file():
                journal_path.parent.mkdir(parents=True, exist_ok=True)
                partial = journal_path.with_name(f".{journal_path.name}.{uuid.uuid4().hex}.incomplete")
                shutil.copyfile(stored, partial)
                partial.replace(journal_path)  # whole or not at all, as get_to_file
        return path, ItemJournal.open(journal_path)

    async def _local_copy(self, key: str) -> Path:
        # Read each item from the store once per run; never from its URL. A local store's file is
        # read in place: copying it cost a file created, written and deleted per item, as much
        # CPU as half the provider's requests (bench/bench_ai_stage.py, docs/ai_stage.md).
        in_place = self.store.file_in_place(key)
        if in_place is not None:
            return in_place
        path = self.cache_dir / key
        self._copies[path] += 1  # counted before the download: an item sharing it waits for no one
        if not path.exists():  # an item sharing it may have copied it already
            await self.store.get_to_file(key, path)  # which makes the folder, in a worker thread
        return path

    def _drop_local_copy(self, path: Path | None) -> None:
        """Delete an item's local media copy once no item in flight uses it (disk bounded by items in flight);
        a local store's own file, read in place, is never a copy."""
        if path is None or path not in self._copies:
            return
        self._copies[path] -= 1
        if self._copies[path] <= 0:
            del self._copies[path]
            path.unlink(missing_ok=True)

    async def _journal(self, sha256: str) -> ItemJournal:
        path = self.journal_dir / f"{sha256}.jsonl"
        if not path.exists():
            # Another machine may have finished steps of this item: resume from the stored journal.
            key = journal_store_key(sha256)
            if await self.store.exists(key):
                await self.store.get_to_file(key, path)
        return await ItemJournal.open_async(path)

    async def _keep_journal(self, journal: ItemJournal, item: ItemAnalysis, *, in_progress: bool = False) -> None:
        """Copy the item's journal (in progress or finished) to the store, where any machine resumes from it.

        A failed copy in progress is retried at the next sync (the journal only
        grows); a failed final copy becomes the item's note.
        """
        if not journal.written:
            return
        try:
            synced = journal.unsynced
            await self.store.put_file(journal_store_key(item.sha256), journal.path, content_type="application/x-ndjson")
            journal.mark_synced(synced)
        except StoreError as exc:
            if in_progress:
                return
            # The item's results are complete: this is a note, not a failure. The local
            # journal stays, and the next run of any brand holding this item copies it.
            item.notes.append(f"journal not copied to the store: {exc}")


async def _none() -> None:
    return None


async def _shared_image(data: bytes | Path, reading: asyncio.Semaphore | None = None) -> ImageInput | bytes | Path:
    """The picture read, validated and hashed once, off the loop, for all of a unit's methods (one
    decode, one body per size for remote models); as given when it does not decode, so each method
    records its own failure as before. ``reading`` bounds the pictures read at once."""
    try:
        if reading is None:
            return await asyncio.to_thread(image_input, data)
        async with reading:
            return await asyncio.to_thread(image_input, data)
    except AIMethodError:
        return data


def failures_by_method(items: list[ItemAnalysis]) -> dict[str, int]:
    """How many steps failed, by method."""
    return dict(Counter(f["method"] for item in items for f in item.failures).most_common())


async def analyse_brand(
    rows: list[dict[str, Any]],
    *,
    runner: MethodRunner,
    store: MediaStore,
    cache_dir: Path,
    journal_dir: Path,
    config: AnalysisConfig = AnalysisConfig(),
    progress: Callable[[ItemAnalysis], None] | None = None,
    sink: Callable[[ItemAnalysis], None] | None = None,
    plan: PipelinePlan | None = None,
) -> tuple[list[ItemAnalysis], float]:
    """Analyse a brand's ``ok`` items; returns them and the elapsed seconds.

    ``cache_dir`` holds this run's local copies of the media from an S3 store
    (each is deleted when its item is done; the caller removes the folder); a
    local store's files are read in place, not copied. ``journal_dir``
    keeps the per-item journals across runs. With ``sink``, each finished item
    goes to it in row order and is not kept (the list returned is empty):
    memory and local disk stay bounded by the items in flight, whatever the
    brand's size (``BrandAnalyser.analyse_in_order``). ``plan``: the methods to run (default:
    ``AD_ASSETS_METHODS``'s, see ``pipeline_plan.plan_for``).
    """
    started = time.perf_counter()
    analyser = BrandAnalyser(
        runner, store, cache_dir=cache_dir, journal_dir=journal_dir, config=config, progress=progress, plan=plan
    )
    ok = [row for row in rows if row.get("status") == "ok"]
    if sink is not None:
        await analyser.analyse_in_order(ok, sink)
        return [], time.perf_counter() - started
    return await analyser.analyse(ok), time.perf_counter() - started
