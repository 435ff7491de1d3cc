"""Backfills over the ``brands`` partitions: which brands are stale, and re-running them.

**Which brands.** A brand's assets are *stale* when Dagster says so: an
asset's ``code_version`` changed since the brand was materialised (every AI
method's ``version`` feeds its asset's code version, so bumping a method marks
every brand that ran it), or an upstream asset has a newer data version. The
verdict comes from Dagster's ``CachingStaleStatusResolver``
(``dagster._core.definitions.data_version``), the resolver behind the UI's
"stale" badges and ``RunRequest(stale_assets_only=True)``; dagster 1.13.27 has
no public function for it, so this is the one internal import, kept here.
*Missing* means an asset of the brand was never materialised (a failed or
queued run).

**How they run.** Two ways, both recorded on the instance so the UI shows them:

- ``submit``: a Dagster asset backfill (``PartitionBackfill.from_asset_partitions``
  + ``instance.add_backfill``, exactly what the UI's "Launch backfill" creates).
  The backfill daemon (``ad-assets dev`` or ``dagster-daemon``) turns it into one
  run per brand through the run queue: one run per brand at a time, the
  global cap, run retries. It appears on the UI's Backfills page.
- ``in-process``: for a machine with no daemon, each brand's ``ingest_brand`` run
  is created with the code location's origin (re-executable from the UI) and
  executed here, one after another, tagged ``ad_assets/backfill=<id>`` so the
  runs can be filtered together in the UI.

``auto`` submits when the backfill daemon has sent a heartbeat in the last
minute, and runs in-process otherwise, so the command always makes progress.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContext

from ad_assets.jobs import INGEST_JOB, console_run_config
from ad_assets.partitions import BRANDS

BACKFILL_TAG = "ad_assets/backfill"
BACKFILL_DAEMON = "BACKFILL"
#: The backfill daemon beats every 30 s; a minute without one means it is not running.
DAEMON_HEARTBEAT_MAX_AGE_S = 60.0
MODES = ("auto", "submit", "in-process")


class BackfillError(Exception):
    """A backfill cannot be planned or started as asked; the message says what to change."""


class UnknownBrandError(BackfillError, KeyError):
    """A brand asked for is not a ``brands`` partition."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


@dataclass(frozen=True)
class BrandState:
    """Where one brand stands: ``fresh``, ``stale`` or ``missing``, and why."""

    brand: str
    status: str
    causes: tuple[str, ...] = ()
    assets: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        """Plain JSON (keys are a contract: add, never rename)."""
        return {"brand": self.brand, "status": self.status, "causes": list(self.causes), "assets": self.assets}


@dataclass(frozen=True)
class BackfillPlan:
    """The brands looked at, and the ones selected to re-run."""

    states: tuple[BrandState, ...]
    selected: tuple[str, ...]
    asset_keys: tuple[dg.AssetKey, ...]


@dataclass(frozen=True)
class BrandRun:
    """One brand's in-process run."""

    brand: str
    run_id: str
    success: bool
    elapsed_s: float
    errors: tuple[str, ...] = ()


class _InstanceLoadingContext(LoadingContext):
    """The batching context Dagster's resolver wants, bound to one instance for one plan."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._loaders: dict = {}

    @property
    def instance(self) -> dg.DagsterInstance:
        return self._instance

    @property
    def loaders(self) -> dict:
        return self._loaders


def brand_asset_keys(asset_graph) -> list[dg.AssetKey]:
    """The materialisable assets partitioned by brand, upstream first."""
    keys = [
        key
        for key in asset_graph.materializable_asset_keys
        if (partitions := asset_graph.get(key).partitions_def) is not None and getattr(partitions, "name", None) == BRANDS
    ]
    order = {key: i for i, key in enumerate(asset_graph.toposorted_asset_keys)}
    return sorted(keys, key=lambda key: order.get(key, len(order)))


def brand_states(instance: dg.DagsterInstance, defs: dg.Definitions, brands: Iterable[str]) -> list[BrandState]:
    """Stale status of every brand asset of each brand, as the UI computes it."""
    asset_graph = defs.resolve_asset_graph()
    keys = brand_asset_keys(asset_graph)
    resolver = CachingStaleStatusResolver(instance, asset_graph, _InstanceLoadingContext(instance))
    states = []
    for brand in brands:
        assets: dict[str, str] = {}
        causes: list[str] = []
        for key in keys:
            status = resolver.get_status(key, brand)
            assets[key.to_user_string()] = status.value.lower()
            if status == StaleStatus.STALE:
                for cause in resolver.get_stale_root_causes(key, brand):
                    text = f"{cause.asset_key.to_user_string()}: {cause.reason}"
                    if text not in causes:
                        causes.append(text)
        values = set(assets.values())
        overall = "stale" if "stale" in values else "missing" if "missing" in values else "fresh"
        if overall == "missing":
            causes = [f"{name}: never materialised" for name, s in assets.items() if s == "missing"]
        states.append(BrandState(brand, overall, tuple(causes), assets))
    return states


def plan_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    *,
    brands: Sequence[str] | None = None,
    stale_only: bool = False,
    include_missing: bool = False,
) -> BackfillPlan:
    """Choose the brands to re-run.

    ``brands`` limits the choice (each must be a ``brands`` partition; the
    default is every partition). Without ``stale_only`` every brand considered
    is selected; with it, only brands with a stale asset, plus those with a
    missing one when ``include_missing``.

    The assets to run are every brand asset, or with ``stale_only`` only the
    stale/missing ones of the selected brands and what depends on them: a bumped
    summary method re-runs ``brand_summary``, not the downloads.
    """
    known = instance.get_dynamic_partitions(BRANDS)
    if brands:
        registered = set(known)
        unknown = [b for b in brands if b not in registered]
        if unknown:
            raise UnknownBrandError(
                f"unknown brand(s) {', '.join(map(repr, unknown))}: not a 'brands' partition; "
                "register a brand first (ad-assets ingest BRAND FILE, or an SQS message)"
            )
        considered = list(dict.fromkeys(brands))
    else:
        considered = list(known)
    states = brand_states(instance, defs, considered)
    wanted = {"stale", "missing"} if include_missing else {"stale"}
    chosen = [s for s in states if not stale_only or s.status in wanted]
    asset_graph = defs.resolve_asset_graph()
    keys = brand_asset_keys(asset_graph)
    if stale_only:
        keys = assets_to_rerun(asset_graph, keys, chosen)
    return BackfillPlan(tuple(states), tuple(s.brand for s in chosen), tuple(keys))


def assets_to_rerun(asset_graph, keys: Sequence[dg.AssetKey], states: Iterable[BrandState]) -> list[dg.AssetKey]:
    """The assets not fresh in some of ``states``, what is downstream of them, and their op mates.

    ``keys`` is in topological order. Assets computed by one op (a multi-asset)
    run together, so selecting one selects all of them.
    """
    wanted = {dg.AssetKey.from_user_string(name) for s in states for name, status in s.assets.items() if status != "fresh"}
    selected: set[dg.AssetKey] = set()
    for key in keys:
        node = asset_graph.get(key)
        if key in wanted or any(parent in selected for parent in node.parent_keys):
            selected |= set(node.execution_set_asset_keys) & set(keys) | {key}
    return [key for key in keys if key in selected]


def backfill_daemon_running(instance: dg.DagsterInstance, max_age_s: float = DAEMON_HEARTBEAT_MAX_AGE_S) -> bool:
    """True when the instance's backfill daemon sent a heartbeat within ``max_age_s`` seconds."""
    beat = instance.get_daemon_heartbeats().get(BACKFILL_DAEMON)
    return beat is not None and time.time() - beat.timestamp <= max_age_s


def submit_backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    plan: BackfillPlan,
    *,
    title: str | None = None,
    description: str | None = None,
) -> str:
    """Record a Dagster asset backfill of the plan's brands; returns its id (the daemon runs it)."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    if not plan.selected:
        raise BackfillError("no brand selected: nothing to backfill")
    backfill_id = make_new_backfill_id()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=list(plan.selected),
        asset_selection=list(plan.asset_keys),
        backfill_timestamp=time.time(),
        tags={BACKFILL_TAG: backfill_id, "ad_assets/source": "backfill"},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title or f"ad-assets backfill of {len(plan.selected)} brand(s)",
        description=description,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill_id


def run_in_process(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    plan: BackfillPlan,
    *,
    backfill_id: str | None = None,
    on_done: Callable[[int, int, BrandRun], None] | None = None,
    log_level: str = "WARNING",
) -> list[BrandRun]:
    """Run the plan's assets for each selected brand, here and one at a time; ``on_done(i, n, run)`` after each.

    Each run is created with the code location's origin (``instance_runs``), so
    the UI lists it on the job page and can re-execute it, but it executes in
    this process with ``defs`` (the definitions this process resolved the plan
    with), outside the run queue: that is what ``in-process`` means.
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run

    from ad_assets.instance_runs import code_location, create_brand_run, run_outcome

    backfill_id = backfill_id or f"local-{uuid.uuid4().hex[:8]}"
    job = InMemoryJob(defs.resolve_job_def(INGEST_JOB))
    run_config = console_run_config(log_level)
    runs = []
    with code_location(instance) as context:
        for index, brand in enumerate(plan.selected, start=1):
            started = time.perf_counter()
            created = create_brand_run(
                context,
                brand,
                tags={BACKFILL_TAG: backfill_id, "ad_assets/source": "backfill"},
                asset_selection=list(plan.asset_keys),
                run_config=run_config,
            )
            execute_run(job, created, instance)
            outcome = run_outcome(instance, created.run_id)
            elapsed_s = round(time.perf_counter() - started, 2)
            run = BrandRun(brand, outcome.run_id, outcome.success, elapsed_s, tuple(outcome.errors))
            runs.append(run)
            if on_done:
                on_done(index, len(plan.selected), run)
    return runs
