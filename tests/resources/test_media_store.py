"""The media store is where every downloaded byte lands exactly once, on a local
disk or S3. These tests pin what callers rely on: round trips on both backends,
streaming (large files never held whole in memory, multipart on S3), writes
that readers never see half-done, and errors that name the key and the store.
S3 runs against a real S3 API (moto's server on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import boto3
import pytest

from resources.dagster_resources import MediaStoreResource
from resources.media_store import (
    InvalidKeyError,
    MediaStore,
    StoreConfigError,
    StoreError,
    StoreNotFoundError,
    media_key,
)
from tests.support.moto_server import REGION

REPO_ROOT = Path(__file__).resolve().parents[2]
SHA = hashlib.sha256(b"creative").hexdigest()
MIB = 1024 * 1024


def _write_file(path: Path, size: int, seed: bytes = b"x") -> str:
    """Write ``size`` non-repeating-ish bytes in 1 MiB blocks; return their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        written = 0
        block_no = 0
        while written < size:
            block = hashlib.sha256(seed + block_no.to_bytes(8, "big")).digest() * (MIB // 32)
            block = block[: size - written]
            out.write(block)
            digest.update(block)
            written += len(block)
            block_no += 1
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


# -- keys and URLs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sha", "ext", "expected"),
    [
        (SHA, "jpg", f"media/{SHA[:2]}/{SHA}.jpg"),
        (SHA.upper(), ".MP4", f"media/{SHA[:2]}/{SHA}.mp4"),
    ],
)
def test_media_key_is_content_addressed(sha, ext, expected):
    assert media_key(sha, ext) == expected


@pytest.mark.parametrize(("sha", "ext"), [("abc", "jpg"), ("z" * 64, "jpg"), (SHA, ""), (SHA, "j/pg")])
def test_media_key_refuses_what_is_not_a_digest_and_extension(sha, ext):
    with pytest.raises(InvalidKeyError):
        media_key(sha, ext)


@pytest.mark.parametrize(
    "url",
    ["ftp://host/media", "gs://bucket/prefix", "s3://", "s3:///prefix", "file://otherhost/srv/media"],
)
def test_unusable_url_is_a_config_error_naming_it(url):
    with pytest.raises(StoreConfigError) as excinfo:
        MediaStore.from_url(url)
    assert url in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "a//b", "a/./b"])
def test_keys_must_be_clean_relative_paths(tmp_path, key):
    store = MediaStore.from_url(str(tmp_path))
    with pytest.raises(InvalidKeyError):
        store.get_bytes_sync(key)


def test_relative_path_and_file_url_open_the_same_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_path = MediaStore.from_url("store")
    by_url = MediaStore.from_url((tmp_path / "store").as_uri())
    by_path.put_bytes_sync("a/b.txt", b"hello")

    assert by_url.get_bytes_sync("a/b.txt") == b"hello"
    assert by_path.uri_for("a/b.txt") == str(tmp_path / "store" / "a" / "b.txt")
    assert by_path.url == "store"


# -- local directory -------------------------------------------------------


async def test_local_round_trip(tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    src = tmp_path / "ad.jpg"
    src.write_bytes(b"\xff\xd8 jpeg bytes")
    key = media_key(SHA, "jpg")

    assert not await store.exists(key)
    await store.put_file(key, src, content_type="image/jpeg")
    await store.put_bytes("journals/one.jsonl", b'{"step": 1}\n')

    assert await store.exists(key)
    assert await store.get_bytes(key) == b"\xff\xd8 jpeg bytes"
    assert Path(store.uri_for(key)).read_bytes() == b"\xff\xd8 jpeg bytes"
    assert await store.list_keys("") == ["journals/one.jsonl", key]
    assert await store.list_keys("media") == [key]

    await store.delete(key)
    await store.delete(key)  # a second delete is not an error, as on S3
    assert not await store.exists(key)
    assert await store.list_keys("media") == []


def test_local_sync_twins(tmp_path):
    store = MediaStore.from_url(str(tmp_path))
    store.put_bytes_sync("x/1.bin", b"one")
    store.put_bytes_sync("x/1.bin", b"uno")  # overwrite

    assert store.exists_sync("x/1.bin")
    assert not store.exists_sync("x/2.bin")
    assert store.get_bytes_sync("x/1.bin") == b"uno"
    assert store.list_keys_sync("x/") == ["x/1.bin"]
    store.delete_sync("x/1.bin")
    assert store.list_keys_sync("x") == []


def test_list_prefix_matches_whole_segments(tmp_path):
    store = MediaStore.from_url(str(tmp_path))
    for key in ("media/ab/1.jpg", "media/abc/2.jpg", "media/ab/deeper/3.jpg"):
        store.put_bytes_sync(key, b"x")

    assert store.list_keys_sync("media/ab") == ["media/ab/1.jpg", "media/ab/deeper/3.jpg"]


async def test_fifty_mib_file_round_trips_through_streaming(tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    src = tmp_path / "video.mp4"
    digest = _write_file(src, 50 * MIB)

    await store.put_file("media/big/video.mp4", src, content_type="video/mp4")
    back = tmp_path / "back" / "video.mp4"
    await store.get_to_file("media/big/video.mp4", back)

    assert back.stat().st_size == 50 * MIB
    assert _sha256_file(back) == digest
    assert [p.name for p in back.parent.iterdir()] == ["video.mp4"]  # no temp left behind


def test_put_file_does_not_hold_the_whole_file_in_memory(tmp_path):
    # Peak RSS is per process, so measure in a fresh one. The file is sparse
    # (quick to make) and far larger than obstore's multipart window.
    size_mib = 128
    script = textwrap.dedent(
        f"""
        import asyncio, resource
        from pathlib import Path
        from resources.media_store import MediaStore
        src = Path({str(tmp_path / "sparse.bin")!r})
        with open(src, "wb") as f:
            f.truncate({size_mib} * 1024 * 1024)
        store = MediaStore.from_url({str(tmp_path / "store")!r})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        asyncio.run(store.put_file("media/aa/sparse.bin", src))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    # The script ends right after asyncio.run(): it also checks that the
    # process exits cleanly (see _register_exit_grace in media_store).
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    growth_mib = int(done.stdout.strip())
    assert (tmp_path / "store" / "media" / "aa" / "sparse.bin").stat().st_size == size_mib * MIB
    assert growth_mib < size_mib * 3 // 4, f"peak RSS grew {growth_mib} MiB for a {size_mib} MiB upload"


async def test_readers_never_see_a_partial_write(tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    key = "media/at/omic.bin"
    old = b"a" * (8 * MIB)
    store.put_bytes_sync(key, old)
    src = tmp_path / "new.bin"
    src.write_bytes(b"b" * (24 * MIB))
    stop = threading.Event()
    seen: list[tuple[int, bytes, bytes]] = []

    def read_until_stopped() -> None:
        while not stop.is_set() or not seen:
            data = store.get_bytes_sync(key)
            seen.append((len(data), data[:1], data[-1:]))

    reader = asyncio.create_task(asyncio.to_thread(read_until_stopped))
    try:
        await store.put_file(key, src)
    finally:
        stop.set()
        await reader

    allowed = {(len(old), b"a", b"a"), (24 * MIB, b"b", b"b")}
    assert seen and set(seen) <= allowed
    assert store.get_bytes_sync(key) == src.read_bytes()
    assert store.list_keys_sync("media") == [key]  # staging files are never listed
    assert sorted(p.name for p in (tmp_path / "store" / "media" / "at").iterdir()) == ["omic.bin"]


async def test_missing_key_raises_not_found_naming_key_and_store(tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))

    with pytest.raises(StoreNotFoundError) as excinfo:
        await store.get_bytes("media/no/such.jpg")
    message = str(excinfo.value)
    assert "media/no/such.jpg" in message and str(tmp_path / "store") in message
    assert isinstance(excinfo.value, FileNotFoundError) and isinstance(excinfo.value, StoreError)

    target = tmp_path / "out" / "such.jpg"
    with pytest.raises(StoreNotFoundError):
        await store.get_to_file("media/no/such.jpg", target)
    assert list(target.parent.iterdir()) == []  # neither the file nor a temp

    with pytest.raises(StoreNotFoundError):
        store.get_bytes_sync("media/no/such.jpg")


async def test_put_file_of_a_missing_local_file_says_which_file(tmp_path):
    store = MediaStore.from_url(str(tmp_path / "store"))
    with pytest.raises(StoreNotFoundError, match=r"gone\.jpg"):
        await store.put_file("media/aa/x.jpg", tmp_path / "gone.jpg")


# -- S3 (moto server) ------------------------------------------------------


def _s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


async def test_s3_round_trip_under_prefix(aws_env, make_bucket, tmp_path):
    bucket = make_bucket()
    store = MediaStore.from_url(f"s3://{bucket}/brand-assets/v1/", aws_endpoint_url=aws_env)
    key = media_key(SHA, "png")
    src = tmp_path / "ad.png"
    src.write_bytes(b"\x89PNG fake")

    assert not await store.exists(key)
    await store.put_file(key, src, content_type="image/png")
    await store.put_bytes("journals/x.jsonl", b"{}\n")

    assert await store.exists(key)
    assert await store.get_bytes(key) == b"\x89PNG fake"
    assert await store.list_keys("media") == [key]
    assert await store.list_keys("") == ["journals/x.jsonl", key]
    assert store.uri_for(key) == f"s3://{bucket}/brand-assets/v1/{key}"

    s3 = _s3_client(aws_env)
    head = s3.head_object(Bucket=bucket, Key=f"brand-assets/v1/{key}")
    assert head["ContentType"] == "image/png"

    await store.delete(key)
    assert not await store.exists(key)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["brand-assets/v1/journals/x.jsonl"]


def test_s3_sync_twins(aws_env, make_bucket):
    store = MediaStore.from_url(f"s3://{make_bucket()}/p", aws_endpoint_url=aws_env)
    store.put_bytes_sync("intermediates/a/acme.parquet", b"PAR1")

    assert store.exists_sync("intermediates/a/acme.parquet")
    assert not store.exists_sync("intermediates/a/other.parquet")
    assert store.get_bytes_sync("intermediates/a/acme.parquet") == b"PAR1"
    assert store.list_keys_sync("intermediates") == ["intermediates/a/acme.parquet"]


async def test_s3_large_file_goes_multipart_and_streams_back(aws_env, make_bucket, tmp_path):
    bucket = make_bucket()
    store = MediaStore.from_url(f"s3://{bucket}/big", aws_endpoint_url=aws_env)
    src = tmp_path / "spot.mp4"
    digest = _write_file(src, 12 * MIB, seed=b"spot")  # > 5 MiB chunk: 3 parts

    await store.put_file("media/sp/spot.mp4", src, content_type="video/mp4")

    etag = _s3_client(aws_env).head_object(Bucket=bucket, Key="big/media/sp/spot.mp4")["ETag"]
    assert etag.strip('"').endswith("-3"), f"expected a 3-part multipart upload, ETag {etag}"
    back = tmp_path / "back.mp4"
    await store.get_to_file("media/sp/spot.mp4", back)
    assert _sha256_file(back) == digest


async def test_s3_missing_key_and_missing_bucket(aws_env, make_bucket):
    store = MediaStore.from_url(f"s3://{make_bucket()}", aws_endpoint_url=aws_env)
    with pytest.raises(StoreNotFoundError, match=r"media/no/such\.jpg"):
        await store.get_bytes("media/no/such.jpg")

    nowhere = MediaStore.from_url("s3://bucket-that-was-never-made/p", aws_endpoint_url=aws_env)
    with pytest.raises(StoreConfigError, match="bucket-that-was-never-made"):
        await nowhere.put_bytes("x.bin", b"x")


def test_s3_endpoint_from_environment_and_credentials_from_a_profile(aws_env, make_bucket, tmp_path, monkeypatch):
    # No keys in the environment: a named profile in a shared credentials file
    # (what a developer with ~/.aws has) must be found through boto3.
    bucket = make_bucket()
    credentials = tmp_path / "credentials"
    credentials.write_text("[adteam]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "adteam")

    store = MediaStore.from_url(f"s3://{bucket}/p")  # endpoint from AWS_ENDPOINT_URL
    store.put_bytes_sync("k.txt", b"via profile")
    assert store.get_bytes_sync("k.txt") == b"via profile"


def test_s3_unknown_profile_is_a_config_error(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(StoreConfigError, match="no-such-profile"):
        MediaStore.from_url("s3://bucket/p")


def test_media_store_resource_opens_the_configured_store(aws_env, make_bucket):
    bucket = make_bucket()
    resource = MediaStoreResource(storage_url=f"s3://{bucket}/m", aws_endpoint_url=aws_env, aws_region=REGION)
    resource.store().put_bytes_sync("k", b"v")

    assert resource.store() is resource.store()
    assert resource.store().uri_for("k") == f"s3://{bucket}/m/k"
    assert MediaStore.from_url(f"s3://{bucket}/m").get_bytes_sync("k") == b"v"
