"""Where an experiment's files live: a local (or shared) folder, or a storage URI.

``results_dir`` may be a path or a URI (``s3://bucket/prefix``, ``gs://bucket/prefix``); a
:class:`Store` reads and writes the experiment's files there through ``pyarrow.fs``, the same
filesystem layer Ray Tune uses for its checkpoints. Object stores have no append and no atomic
rename, so every write here is one whole-file put (locally: a temporary file renamed into
place), and nothing is ever appended.

An S3 endpoint other than AWS (MinIO, moto, ...) is given in the URI's query
(``s3://bucket/prefix?endpoint_override=host:port&scheme=http``) or by ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

from kdtune.errors import ConfigError
from kdtune.files import atomic_write_bytes

SCHEMES = ("s3", "gs", "gcs")


def is_uri(root: str) -> bool:
    return "://" in str(root)


def _s3_filesystem(parsed, query: dict[str, str]):
    from pyarrow import fs

    endpoint, scheme = query.get("endpoint_override"), query.get("scheme")
    env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint is None and env:
        url = urlparse(env)
        endpoint, scheme = url.netloc or url.path, scheme or url.scheme or None
    kwargs = {k: v for k, v in (("endpoint_override", endpoint), ("scheme", scheme),
                                ("region", query.get("region") or os.environ.get("AWS_REGION")
                                 or os.environ.get("AWS_DEFAULT_REGION")))
              if v}
    # Fail fast on an unreachable endpoint instead of retrying for minutes.
    return fs.S3FileSystem(connect_timeout=5, request_timeout=30,
                           retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=3), **kwargs)


def filesystem_for(uri: str, field: str = "--results-dir"):
    """``(pyarrow filesystem, path inside it)`` of a storage URI; one-line errors."""
    from pyarrow import fs

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    path = (parsed.netloc + parsed.path).rstrip("/")
    if scheme == "file":
        return fs.LocalFileSystem(), parsed.path
    if scheme not in SCHEMES:
        raise ConfigError(field, f"unknown storage scheme {scheme!r} in {uri!r}; use a local or "
                          "shared path, s3://bucket/prefix or gs://bucket/prefix")
    # No credential check here: pyarrow's default chain (environment, ~/.aws, an EC2 instance
    # profile, IRSA, GKE workload identity) finds what it finds, and the record's probe (a real
    # write and read) turns a failure into one line before any work.
    if not parsed.netloc:
        raise ConfigError(field, f"{uri!r} names no bucket; use {scheme}://bucket/prefix")
    if scheme == "s3":
        return _s3_filesystem(parsed, dict(parse_qsl(parsed.query))), path
    return fs.GcsFileSystem(), path


def storage_error(exc: BaseException, uri: str, field: str = "--results-dir") -> ConfigError:
    """A filesystem exception as one line naming the storage and the likely fix."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    low = text.lower()
    if "nosuchbucket" in low.replace(" ", "") or "bucket" in low and any(
            w in low for w in ("does not exist", "not found", "not exist")):
        hint = "the bucket does not exist; create it first"
    elif any(w in low for w in ("connect", "timed out", "timeout", "unreachable", "resolve")):
        hint = "the storage endpoint is unreachable; check the URI / AWS_ENDPOINT_URL and network"
    elif "credential" in low and any(w in low for w in ("no ", "unable", "missing", "not found",
                                                          "could not", "failed to")):
        hint = ("no credentials were found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
                "AWS_PROFILE, give ~/.aws/credentials, or run where an instance profile / "
                "workload identity provides them (on the driver and every node)")
    elif any(w in low for w in ("access denied", "access_denied", "accessdenied", "forbidden",
                                "credential", "signature")):
        hint = ("access was denied; check the credentials the default chain finds (environment, "
                "~/.aws, instance profile, IRSA / workload identity) on the driver and every node")
    else:
        hint = "check the URI, the credentials and that the bucket exists"
    return ConfigError(field, f"cannot use storage {uri!r}: {hint} ({text})")


class Store:
    """The files under ``root`` (a folder or a URI), addressed by '/'-separated relative names."""

    def __init__(self, root: str | Path):
        self.root = str(root).rstrip("/") if is_uri(str(root)) else str(root)
        self.remote = is_uri(self.root)
        if self.remote:
            self.fs, self.base = filesystem_for(self.root)
        else:
            self.fs, self.base = None, str(Path(self.root))

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def path(self, rel: str = "") -> str:
        """The full path of ``rel`` inside the filesystem (a local path, or bucket/key)."""
        return f"{self.base}/{rel}".rstrip("/") if rel else self.base

    def uri(self, rel: str = "") -> str:
        """``rel`` as a path or URI a user (or another kdtune) can pass around."""
        return f"{self.root}/{rel}".rstrip("/") if rel else self.root

    def local(self, rel: str = "") -> Path:
        if self.remote:
            raise ValueError(f"{self.root} is not a local folder")
        return Path(self.path(rel))

    def info(self, rel: str):
        return self.fs.get_file_info(self.path(rel))

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return self.local(rel).exists()
        from pyarrow import fs

        return self.info(rel).type != fs.FileType.NotFound

    def is_file(self, rel: str) -> bool:
        if not self.remote:
            return self.local(rel).is_file()
        from pyarrow import fs

        return self.info(rel).type == fs.FileType.File

    def mtime(self, rel: str) -> float | None:
        if not self.remote:
            p = self.local(rel)
            return p.stat().st_mtime if p.exists() else None
        info = self.info(rel)
        return info.mtime.timestamp() if info.mtime is not None else None

    def read_bytes(self, rel: str) -> bytes:
        if not self.remote:
            return self.local(rel).read_bytes()
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def write_bytes(self, rel: str, data: bytes) -> None:
        """One whole-file write: a temporary file renamed into place, or a single put."""
        if self.remote:
            parent = self.path(rel).rsplit("/", 1)[0]
            self.fs.create_dir(parent, recursive=True)  # a no-op on object stores
            with self.fs.open_output_stream(self.path(rel)) as f:
                f.write(data)
            return
        atomic_write_bytes(self.local(rel), data)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def listdir(self, rel: str = "") -> list[str]:
        """Names directly under ``rel`` (empty if it does not exist)."""
        if not self.remote:
            p = self.local(rel)
            return sorted(c.name for c in p.iterdir()) if p.is_dir() else []
        from pyarrow import fs

        selector = fs.FileSelector(self.path(rel), allow_not_found=True, recursive=False)
        return sorted(i.base_name for i in self.fs.get_file_info(selector))

    def delete(self, rel: str) -> None:
        """Remove a file or a folder (recursively); nothing if it is absent."""
        if not self.remote:
            p = self.local(rel)
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
            return
        from pyarrow import fs

        info = self.info(rel)
        if info.type == fs.FileType.Directory:
            self.fs.delete_dir(self.path(rel))
        elif info.type == fs.FileType.File:
            self.fs.delete_file(self.path(rel))

    def upload(self, local: Path, rel: str) -> None:
        """Copy a local file or folder to ``rel`` (replacing what was there)."""
        if local.is_dir():
            for child in sorted(local.rglob("*")):
                if child.is_file():
                    self.write_bytes(f"{rel}/{child.relative_to(local).as_posix()}",
                                     child.read_bytes())
            return
        self.write_bytes(rel, local.read_bytes())

    def download(self, rel: str, local: Path) -> Path:
        """Copy ``rel`` (a file or a folder) to ``local``; returns ``local``."""
        if not self.remote and self.local(rel).is_dir() or self.remote and not self.is_file(rel):
            for name in self.listdir(rel):
                self.download(f"{rel}/{name}", local / name)
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(self.read_bytes(rel))
        return local

    def ray_storage(self) -> tuple[str, object | None]:
        """``(storage_path, storage_filesystem)`` for Ray Tune's ``RunConfig``."""
        if self.remote:
            return self.base, self.fs
        return str(Path(self.base).resolve()), None
