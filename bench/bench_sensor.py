"""Benchmark of the SQS sensor: messages handled per second, and a 1,000-message tick vs its budget.

moto's SQS/S3 server runs in its own process on loopback (so it does not
compete with the sensor for the GIL, as a remote SQS would not). N messages
for N/5 brands are queued, then the real ``sqs_brand_requests`` sensor is
evaluated with ``build_sensor_context`` on a temporary instance, with the
production settings (20 s budget, 1 s long polls, registration into a local
store). The first tick must take all N messages within the budget; its runs
are then recorded as the daemon would, and the next tick confirms them and
deletes the messages (the "settle" cost). A last case registers into an S3
store (on moto) instead of a local directory.

Prints JSON lines: {"name", "value", "unit", "bound", "goal"}.

    python bench/bench_sensor.py            # 1,000 messages
    python bench/bench_sensor.py --quick    # 200 messages, for a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing tests/

import boto3  # noqa: E402
import dagster as dg  # noqa: E402

from ad_assets.settings import Settings  # noqa: E402
from sensors.sqs_sensor import build_sqs_sensor  # noqa: E402
from tests.sensors.sensor_support import QUEUED_COORDINATOR, record_like_the_daemon  # noqa: E402

REGION = "us-east-1"
SERVER_START_TIMEOUT_S = 30.0


def emit(name: str, value: float, unit: str, bound: float | None = None, goal: str | None = None) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "bound": bound, "goal": goal}), flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto's server in a subprocess; returns (process, endpoint) once it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto server did not start")


def fill_queue(sqs, url: str, n: int) -> None:
    brands = max(1, n // 5)
    for start in range(0, n, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"brand": f"brand-{(start + i) % brands}", "urls": [f"https://cdn.example.com/{start + i}.jpg"]})}
            for i in range(min(10, n - start))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def tick(sensor, instance, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor.name) as context:
        started = time.perf_counter()
        result = sensor(context)
        return result, time.perf_counter() - started


def run_case(endpoint: str, n: int, storage: str, label: str, work: Path) -> None:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    fill_queue(sqs, url, n)
    settings = Settings(home=work / "home", storage_url=storage, sqs_queue_url=url, aws_endpoint_url=endpoint, aws_region=REGION)
    sensor = build_sqs_sensor(settings)
    home = work / f"dagster-{label}"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=QUEUED_COORDINATOR) as instance:
        result, elapsed = tick(sensor, instance, None)
        handled = len(result.run_requests or [])
        if handled != n:
            raise SystemExit(f"{label}: one tick handled {handled} of {n} messages")
        budget = settings.sqs_tick_budget_s
        emit(f"sensor_msgs_per_s_{label}", n / elapsed, "msgs/s", None, f">={n / budget:.0f} ({n} in one {budget:g}s tick)")
        emit(f"tick_s_{n}_messages_{label}", elapsed, "s", budget, "<=bound")
        emit(f"cursor_bytes_{n}_messages_{label}", len(result.cursor or ""), "bytes", None, "informative")
        record_like_the_daemon(instance, result)
        settled, settle_s = tick(sensor, instance, result.cursor)
        if settled.run_requests:
            raise SystemExit(f"{label}: the settling tick asked for runs again")
        emit(f"settle_tick_s_{n}_messages_{label}", settle_s, "s", budget, "<=bound")
        left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if any(int(v) for v in left.values()):
            raise SystemExit(f"{label}: messages left after settling: {left}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 messages instead of 1,000")
    args = parser.parse_args()
    n = 200 if args.quick else 1000
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION})
    proc, endpoint = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            run_case(endpoint, n, str(work / "store"), "local_store", work)
            if not args.quick:
                s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
                s3.create_bucket(Bucket="bench-store")
                run_case(endpoint, n, "s3://bench-store/prod", "s3_store", work)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
