"""Artifacts in S3-compatible object storage: `ORCH_ARTIFACTS=s3://bucket/prefix`.

The same content-addressed layout as a local store, under the prefix: objects
`PREFIX/ab/abcdef....<ext>`, serializers, refs and hashes unchanged, so a ref recorded
against one store names the same object in any other. Invariants:

* a half-written object is never visible under its final name: a value is serialized
  into a local spool file (hashed as it is written, as locally), and only then sent, in
  one PUT, or above `MULTIPART_FROM` as a multipart upload completed after its last part;
  a writer killed mid-upload leaves an unfinished upload, never an object, and `cache gc`
  aborts unfinished uploads older than its grace period;
* writing content that is already stored uploads it again: it repairs a damaged object and
  refreshes its last-modified time, which gc's grace period reads as a file's mtime;
* the spool file is a temporary file of the writing process (`TMPDIR`), never under
  the bucket's names;
* every read (and `verify`) re-hashes the bytes; a missing or corrupt object is one
  `ArtifactError` naming the object's URL; a large object is downloaded to a spool file
  and read through a private mapping, as a local file is;
* credentials come from boto3's standard chain (`AWS_ACCESS_KEY_ID` /
  `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `AWS_PROFILE`, the shared files); the
  endpoint from `ORCH_S3_ENDPOINT`, else `AWS_ENDPOINT_URL`, else AWS itself. They are
  never logged, and every error is ours (`ArtifactError`), its text scrubbed of any secret;
* nothing is contacted when the store is made: the client is created on first use, once
  per process (a forked child makes its own);
* `verify_soon` checks an object as `verify` does (GET, re-hash), on a small thread pool
  of the process (boto3's clients are thread-safe): a cached run checks the objects of
  the hits it expects concurrently instead of one round trip after another; objects of
  `CHECK_AHEAD_BELOW` or more are checked when needed only (not many big downloads at
  once).

boto3 rather than fsspec/s3fs: the multipart upload's life (create, complete, abort, list
the unfinished) is explicit in its API, and it has no event loop to carry into forked
children and Dask workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import mmap
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.artifacts.store import (
    _MAP_FROM,
    INLINE_MAX,
    SERIALIZERS,
    ArtifactRef,
    ArtifactStore,
    StoredObject,
    check_written,
)
from orchestrator.cache.hashing import hash_bytes, hash_file
from orchestrator.errors import ArtifactError

MULTIPART_FROM = 64 << 20  # bytes: larger objects go up (and down) in parts of this size
CHECKERS = 8  # concurrent background checks (`verify_soon`) per process
CHECK_AHEAD_BELOW = MULTIPART_FROM  # bytes: larger objects are checked when needed only
_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def endpoint() -> str | None:
    """The S3 endpoint URL: `ORCH_S3_ENDPOINT`, else `AWS_ENDPOINT_URL`, else AWS's own."""
    return os.environ.get("ORCH_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None


def scrub(text: str) -> str:
    """`text` with every configured credential replaced by `***`."""
    for name in _SECRETS:
        secret = os.environ.get(name)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without slashes at its ends)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ArtifactError(
            f"ORCH_ARTIFACTS {url!r} is not an object store URL; give s3://BUCKET[/PREFIX]"
        )
    if parts.query or parts.fragment:
        raise ArtifactError(f"ORCH_ARTIFACTS {url!r}: an s3:// URL takes no query or fragment")
    return parts.netloc, parts.path.strip("/")


class ObjectArtifactStore(ArtifactStore):
    """Content-addressed objects under `s3://bucket/prefix` (see the module docstring)."""

    is_local = False

    def __init__(self, url: str, inline_max: int = INLINE_MAX) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.inline_max = inline_max
        self.loads = 0
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self._checkers: cf.ThreadPoolExecutor | None = None
        self._checkers_pid = 0

    # -- naming ------------------------------------------------------------------------
    @property
    def root(self) -> Path:  # type: ignore[override]
        raise ArtifactError(
            f"the artifact store {self.location} is object storage, not a folder: this needs "
            "a local artifact folder (ORCH_ARTIFACTS=PATH)"
        )

    def key(self, ref: ArtifactRef) -> str:
        self.path_check(ref)
        name = f"{ref.hash[:2]}/{ref.hash}{SERIALIZERS[ref.serializer][0]}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def path_check(self, ref: ArtifactRef) -> None:
        if ref.items is not None:
            raise ArtifactError(f"artifact {ref.hash[:12]} is a list of artifacts, not an object")
        if ref.data is not None:
            raise ArtifactError(
                f"artifact {ref.hash[:12]} is stored inline in the metadata store, not as an object"
            )

    def where(self, ref: ArtifactRef) -> str:
        return f"s3://{self.bucket}/{self.key(ref)}"

    def path(self, ref: ArtifactRef) -> Path:
        raise ArtifactError(
            f"artifact {ref.hash[:12]} is an object ({self.where(ref)}), not a local file"
        )

    # -- the client ----------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 client of this process (a forked child makes its own, and its own lock,
        which a thread of the parent may have held when it forked)."""
        if self._pid != os.getpid():
            self._lock, self._client, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            if self._client is None:
                self._client = _make_client()
            return self._client

    def _fail(self, exc: BaseException, what: str, ref: ArtifactRef | None = None) -> ArtifactError:
        """One `ArtifactError` for a failed request, naming the object, never a secret."""
        code = _error_code(exc)
        if code == "NoSuchBucket":
            why = f"the bucket '{self.bucket}' does not exist; create it, or fix ORCH_ARTIFACTS"
        elif code in ("NoSuchKey", "404", "NotFound") and ref is not None:
            return ArtifactError(f"artifact {ref.hash[:12]} is missing: {self.where(ref)}")
        else:
            why = scrub(" ".join(str(exc).split()))
        return ArtifactError(scrub(f"{what}: {why}"))

    # -- writing -------------------------------------------------------------------------
    def _temp(self) -> tuple[int, str]:
        """A local spool file (the value is hashed as it is written there, then uploaded
        under its content address): `(fd, path)`."""
        return tempfile.mkstemp(prefix="orch-spool-")

    def _spool(self) -> Path:
        fd, tmp = self._temp()
        os.close(fd)
        return Path(tmp)

    def _commit(self, tmp: str, ref: ArtifactRef) -> None:
        try:
            self._upload(Path(tmp), ref)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _upload(self, src: Path, ref: ArtifactRef) -> None:
        """One PUT of the whole file, or (large) a multipart upload completed at its end."""
        from boto3.s3.transfer import TransferConfig

        try:
            if ref.size < MULTIPART_FROM:
                with open(src, "rb") as f:
                    self.client.put_object(Bucket=self.bucket, Key=self.key(ref), Body=f)
                return
            config = TransferConfig(
                multipart_threshold=MULTIPART_FROM, multipart_chunksize=MULTIPART_FROM
            )
            self.client.upload_file(str(src), self.bucket, self.key(ref), Config=config)
        except Exception as exc:  # noqa: BLE001 - botocore's errors become ours
            what = f"cannot write artifact {ref.hash[:12]} to {self.where(ref)}"
            raise self._fail(exc, what) from None

    def adopt(self, src: Path, ref: ArtifactRef) -> None:
        check_written(src, ref)
        self._upload(src, ref)

    # -- reading -------------------------------------------------------------------------
    def _read(self, ref: ArtifactRef, *, mapped: bool) -> bytes | bytearray | memoryview:
        if ref.data is not None:
            return self._inline(ref)
        if ref.size >= _MAP_FROM:
            data: bytes | bytearray | memoryview = self._download_mapped(ref)
        else:
            data = self._get(ref)
            if mapped:
                data = bytearray(data)
        if hash_bytes(data) != ref.hash:
            raise ArtifactError(
                f"artifact {ref.hash[:12]} is corrupt (content hash differs): {self.where(ref)}"
            )
        return data

    def _get(self, ref: ArtifactRef) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(ref))["Body"]
            with contextlib.closing(body):
                return bytes(body.read())
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"cannot read artifact {ref.hash[:12]}", ref) from None

    def _download_mapped(self, ref: ArtifactRef) -> memoryview:
        """A large object as a private copy-on-write mapping of a spool file (unlinked at
        once: the mapping keeps its pages, the disk gets them back when it is closed)."""
        with self._downloaded(ref) as tmp, open(tmp, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return memoryview(b"")
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))

    @contextlib.contextmanager
    def _downloaded(self, ref: ArtifactRef) -> Iterator[Path]:
        from boto3.s3.transfer import TransferConfig

        tmp = self._spool()
        config = TransferConfig(
            multipart_threshold=MULTIPART_FROM, multipart_chunksize=MULTIPART_FROM
        )
        try:
            try:
                self.client.download_file(self.bucket, self.key(ref), str(tmp), Config=config)
            except Exception as exc:  # noqa: BLE001
                raise self._fail(exc, f"cannot read artifact {ref.hash[:12]}", ref) from None
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def verify(self, ref: ArtifactRef) -> str | None:
        if ref.items is not None or ref.data is not None:
            return super().verify(ref)
        try:
            self._read(ref, mapped=False)
        except ArtifactError as exc:
            return str(exc)
        return None

    def verify_soon(self, ref: ArtifactRef) -> cf.Future[str | None] | None:
        if ref.items is not None or ref.data is not None or ref.size >= CHECK_AHEAD_BELOW:
            return None
        self.client  # noqa: B018 - made (or remade after a fork) before the threads share it
        with self._lock:
            if self._checkers is None or self._checkers_pid != os.getpid():
                self._checkers = cf.ThreadPoolExecutor(CHECKERS, thread_name_prefix="orch-check")
                self._checkers_pid = os.getpid()
            return self._checkers.submit(self.verify, ref)

    def copy_to(self, ref: ArtifactRef, dest: Path) -> None:
        with self._downloaded(ref) as tmp:
            if hash_file(tmp) != ref.hash:
                raise ArtifactError(
                    f"artifact {ref.hash[:12]} is corrupt (content hash differs): {self.where(ref)}"
                )
            if _same_device(tmp, dest):
                os.replace(tmp, dest)
            else:
                shutil.copyfile(tmp, dest)

    @contextlib.contextmanager
    def local_file(self, ref: ArtifactRef) -> Iterator[Path]:
        with self._downloaded(ref) as tmp:
            yield tmp

    # -- what garbage collection sees ------------------------------------------------------
    def _list_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def listing(self) -> list[StoredObject]:
        found: list[StoredObject] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._list_prefix()
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    if _is_artifact_key(obj["Key"][len(self._list_prefix()) :]):
                        found.append(self._stored(obj["Key"], obj, name))
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"cannot list the artifacts in {self.location}") from None
        return found

    def _stored(self, key: str, obj: dict[str, Any], name: str) -> StoredObject:
        when = obj.get("LastModified") or obj.get("Initiated")
        stamp = when.timestamp() if when is not None else 0.0
        url = f"s3://{self.bucket}/{key}"
        return StoredObject(url, name.split(".")[0], int(obj.get("Size", 0)), stamp)

    def torn_writes(self) -> list[StoredObject]:
        """Multipart uploads begun and never completed (a writer killed mid-upload)."""
        found: list[StoredObject] = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._list_prefix()
            )
            for page in pages:
                for up in page.get("Uploads", []):
                    obj = self._stored(up["Key"], up, up["Key"].rsplit("/", 1)[-1])
                    found.append(_with_upload(obj, up["UploadId"]))
        except Exception as exc:  # noqa: BLE001
            what = f"cannot list the unfinished uploads in {self.location}"
            raise self._fail(exc, what) from None
        return found

    def remove(self, objects: list[StoredObject]) -> None:
        """Abort the unfinished uploads, delete the objects (up to 1000 per request)."""
        start = len(f"s3://{self.bucket}/")
        keys = [o.name[start:] for o in objects if o.upload is None]
        try:
            for obj in objects:
                if obj.upload is not None:
                    with contextlib.suppress(Exception):  # completed or aborted meanwhile
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=obj.name[start:], UploadId=obj.upload
                        )
            for i in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[i : i + 1000]]
                got = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                if got.get("Errors"):
                    first = got["Errors"][0]
                    raise ArtifactError(
                        f"cannot delete s3://{self.bucket}/{first.get('Key')}: "
                        f"{first.get('Code')} {first.get('Message', '')}".rstrip()
                    )
        except ArtifactError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"cannot delete artifacts in {self.location}") from None

    def all_files(self) -> list[Path]:
        raise ArtifactError(f"the artifact store {self.location} holds objects, not files")

    def temp_files(self) -> list[Path]:
        return []  # a spool file is the writing process's own temporary file


def _make_client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ArtifactError(
            "ORCH_ARTIFACTS=s3://... needs boto3: pip install 'orchestrator[s3]'"
        ) from None
    url = endpoint()
    config = Config(
        s3={"addressing_style": "path"} if url else {},
        retries={"max_attempts": 5, "mode": "standard"},
    )
    try:
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=url, config=config)
    except Exception as exc:  # noqa: BLE001 - a bad profile, region or endpoint
        raise ArtifactError(
            scrub(f"cannot open the object store client: {' '.join(str(exc).split())}")
        ) from None


def _error_code(exc: BaseException | None) -> str:
    """The S3 error code of `exc` or of the error it wraps (boto3's transfers wrap them)."""
    while exc is not None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        if "(NoSuchBucket)" in str(exc):
            return "NoSuchBucket"
        exc = exc.__cause__ or exc.__context__
    return ""


def _is_artifact_key(rest: str) -> bool:
    """`ab/abcdef...ext` below the prefix (anything else there is not ours to delete)."""
    folder, _, name = rest.partition("/")
    return len(folder) == 2 and "/" not in name and name.startswith(folder) and "." in name


def _with_upload(obj: StoredObject, upload: str) -> StoredObject:
    return StoredObject(obj.name, obj.hash, obj.size, obj.mtime, upload)


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b.parent if str(b.parent) else ".").st_dev
    except OSError:
        return False
