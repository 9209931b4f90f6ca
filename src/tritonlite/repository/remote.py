"""Cloud model repositories (``s3://``, ``gs://``, ``as://``) as local folders.

As Triton does, a remote repository is copied to a local folder (a temporary one, or the one named
by ``TRITON_AWS_MOUNT_DIRECTORY`` / ``TRITON_GCS_MOUNT_DIRECTORY`` / ``TRITON_AZURE_MOUNT_DIRECTORY``)
that mirrors the remote layout; scanning, config parsing, backends and agents then read that copy.
Each sync lists the remote objects and downloads only those whose size, etag or modification time
changed, and removes what was deleted, so polling sees changes as file changes. The storage
libraries (fsspec with s3fs, gcsfs or adlfs) are imported only when a remote repository is used.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from tritonlite.core.errors import TritonError, internal, invalid_arg
from tritonlite.repository.paths import resolve_inside

log = logging.getLogger(__name__)

# scheme -> (python package, tritonlite extra that installs it, mount directory variable)
BACKENDS = {
    "s3": ("s3fs", "s3", "TRITON_AWS_MOUNT_DIRECTORY"),
    "gs": ("gcsfs", "gcs", "TRITON_GCS_MOUNT_DIRECTORY"),
    "as": ("adlfs", "azure", "TRITON_AZURE_MOUNT_DIRECTORY"),
}
CREDENTIAL_FILE_VARIABLE = "TRITON_CLOUD_CREDENTIAL_PATH"

# Triton's private S3 instance form: s3://[http://|https://]host:port/bucket/path
_S3_ENDPOINT = re.compile(r"^([0-9A-Za-z\-.]+):([0-9]+)/(.*)$")
# what identifies one version of a remote object, in the listings of s3fs, gcsfs and adlfs
_SIGNATURE_KEYS = (
    "size", "ETag", "etag", "md5Hash", "generation", "LastModified", "last_modified", "updated", "mtime", "created",
)  # fmt: skip


@dataclass(frozen=True)
class RemoteLocation:
    """A parsed repository URL: the bucket (container), the path inside it, and where to reach it."""

    url: str
    scheme: str
    bucket: str
    prefix: str = ""
    endpoint: str = ""  # s3 private instance: "http://host:port"
    account: str = ""  # azure storage account

    @property
    def root(self) -> str:
        """The repository as an fsspec path: ``bucket/prefix``."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def mirror_parts(self) -> list[str]:
        """Folders of the local copy, below the cache root: the remote layout."""
        parts = []
        if self.endpoint:
            parts.append(self.endpoint.split("://", 1)[1].replace(":", "_"))
        if self.account:
            parts.append(self.account)
        parts.append(self.bucket)
        return parts + [p for p in self.prefix.split("/") if p]


def is_remote(repository: str | Path) -> bool:
    """Whether a --model-repository value names cloud storage (a Path never does)."""
    return isinstance(repository, str) and repository.partition("://")[0] in BACKENDS and "://" in repository


def _clean_parts(text: str, url: str) -> list[str]:
    parts = [p for p in text.split("/") if p]  # extra slashes are dropped, as Triton does
    if any(p in (".", "..") or "\\" in p for p in parts):
        raise ValueError(f"invalid model repository '{url}': '.' and '..' are not allowed in the path")
    return parts


def parse_remote(url: str) -> RemoteLocation:
    """Triton's repository URLs: ``s3://bucket/path``, ``s3://[http(s)://]host:port/bucket/path``,
    ``gs://bucket/path``, ``as://account/container/path``. Raises ValueError naming the URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in BACKENDS:
        raise ValueError(f"invalid model repository '{url}': expected s3://, gs:// or as://")
    endpoint = ""
    if scheme == "s3":
        protocol = ""
        for candidate in ("https://", "http://"):
            if rest.startswith(candidate):
                protocol, rest = candidate[:-3], rest[len(candidate) :]
                break
        match = _S3_ENDPOINT.match(rest.strip("/"))
        if match:
            host, port, rest = match.groups()
            endpoint = f"{protocol or 'http'}://{host}:{port}"  # Triton talks plain HTTP unless told https://
        elif protocol:
            raise ValueError(f"invalid model repository '{url}': an S3 endpoint is given as {protocol}://host:port")
    parts = _clean_parts(rest, url)
    account = ""
    if scheme == "as":
        if len(parts) < 2:
            raise ValueError(f"invalid model repository '{url}': expected as://account/container/path")
        account, parts = parts[0], parts[1:]
    if not parts:
        raise ValueError(f"invalid model repository '{url}': no bucket name found in the path")
    return RemoteLocation(url, scheme, parts[0], "/".join(parts[1:]), endpoint, account)


def cache_path(root: Path, key: str) -> Path:
    """Where the remote object ``key`` (relative to the repository) goes: refused if it leaves ``root``."""
    parts = key.split("/")
    if not key or key.startswith(("/", "\\")) or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise invalid_arg(f"remote object '{key}' would leave the repository's cache folder; skipped")
    try:
        return resolve_inside(root, key)
    except TritonError:
        raise invalid_arg(f"remote object '{key}' would leave the repository's cache folder; skipped") from None


# --- credentials and filesystems --------------------------------------------------------------------


def _credential_entry(location: RemoteLocation, environ: Mapping[str, str]):
    """Triton's credential file (TRITON_CLOUD_CREDENTIAL_PATH): the longest name that starts the URL."""
    path = environ.get(CREDENTIAL_FILE_VARIABLE)
    if not path:
        return None
    try:
        entries = json.loads(Path(path).read_text()).get(location.scheme, {})
    except (OSError, ValueError) as exc:
        raise internal(f"failed to read the cloud credential file {path}: {exc}") from None
    names = [name for name in entries if location.url.startswith(name)]
    return entries[max(names, key=len)] if names else None


def filesystem_options(location: RemoteLocation, environ: Mapping[str, str] | None = None) -> dict:
    """Keyword arguments of the fsspec filesystem for ``location``: endpoint and credentials.

    Environment variables (and, for S3, the rest of the boto chain: ~/.aws/credentials, profiles,
    instance roles) are read by the libraries themselves; the credential file overrides them.
    """
    environ = os.environ if environ is None else environ
    entry = _credential_entry(location, environ)
    options: dict = {"skip_instance_cache": True}
    if location.scheme == "s3":
        client: dict = {}
        if location.endpoint:
            client["endpoint_url"] = location.endpoint
        options.update(
            use_listings_cache=False,
            client_kwargs=client,
            config_kwargs={"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 3}},
        )
        if entry:
            for name, option in (("key_id", "key"), ("secret_key", "secret"), ("session_token", "token")):
                if entry.get(name):
                    options[option] = entry[name]
            if entry.get("profile"):
                options["profile"] = entry["profile"]
            if entry.get("region"):
                client["region_name"] = entry["region"]
    elif location.scheme == "gs":
        token = entry if isinstance(entry, str) and entry else environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        if token:
            options["token"] = token
    else:
        options["account_name"] = location.account
        key = (entry or {}).get("account_key") or environ.get("AZURE_STORAGE_KEY")
        if key:
            options["account_key"] = key
        else:
            options["anon"] = False  # Azure's default credential chain (managed identity, CLI, environment)
    return options


def open_filesystem(location: RemoteLocation, environ: Mapping[str, str] | None = None):
    """The fsspec filesystem of ``location``; a clear error naming the extra when its library is missing."""
    package, extra, _ = BACKENDS[location.scheme]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise internal(
            f"model repository '{location.url}' needs the '{package}' package: pip install 'tritonlite[{extra}]'"
        ) from None
    classes = {"s3": "S3FileSystem", "gs": "GCSFileSystem", "as": "AzureBlobFileSystem"}
    return getattr(module, classes[location.scheme])(**filesystem_options(location, environ))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"bucket or container not found ({exc})"
    if isinstance(exc, PermissionError):
        return f"access denied, check the credentials ({exc})"
    if type(exc).__name__ in ("NoCredentialsError", "DefaultCredentialsError"):  # botocore, google-auth
        return f"no credentials found ({exc})"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _signature(info: Mapping) -> tuple:
    return tuple(str(info.get(key, "")) for key in _SIGNATURE_KEYS)


# --- one remote repository ---------------------------------------------------------------------------


class RemoteRepository:
    """One remote repository and its local copy (``local``), kept in step by ``sync``."""

    def __init__(self, location: RemoteLocation, local: Path, filesystem=None) -> None:
        self.location = location
        self.local = local
        self._fs = filesystem
        self._files: dict[str, tuple] = {}  # key -> signature of the downloaded copy
        self._listed = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.location.url

    def _list(self) -> dict[str, tuple[tuple, str]]:
        """key (relative to the repository) -> (signature, remote path) of every object."""
        if self._fs is None:
            self._fs = open_filesystem(self.location)
        root = self.location.root.rstrip("/")
        try:
            self._fs.invalidate_cache()
            found = self._fs.find(root, detail=True)
        except TritonError:
            raise
        except Exception as exc:  # the libraries raise their own types (botocore, google, azure)
            raise internal(f"failed to read model repository '{self.url}': {_describe(exc)}") from None
        listing = {}
        for path, info in found.items():
            path = path.lstrip("/")
            if info.get("type", "file") != "file" or path.endswith("/") or not path.startswith(root + "/"):
                continue  # folder markers
            listing[path[len(root) + 1 :]] = (_signature(info), path)
        return listing

    def sync(self, models: Collection[str] | None = None) -> list[str]:
        """List the repository; download what changed of ``models`` (all when None).

        Every remote model gets a local folder (so the index can list it); a model's files are
        downloaded when it is synced. Returns the names of the models whose files changed.
        """
        with self._lock:
            listing = self._list()
            if not listing and not self._listed:
                raise internal(f"failed to read model repository '{self.url}': no objects found under it")
            if not self._listed:  # a copy left by an earlier run is not trusted
                shutil.rmtree(self.local, ignore_errors=True)
                self._listed = True
            self.local.mkdir(parents=True, exist_ok=True)
            by_model: dict[str, dict[str, tuple[tuple, str]]] = {}
            for key, item in listing.items():
                name, sep, _ = key.partition("/")
                if sep and not name.startswith("."):  # objects beside the model folders are ignored
                    by_model.setdefault(name, {})[key] = item
            changed = [name for name in self._remove_gone(set(by_model)) if name]
            wanted = set(by_model) if models is None else set(by_model) & set(models)
            for name in sorted(by_model):
                try:
                    folder = cache_path(self.local, name)
                except TritonError as exc:
                    log.error("model repository '%s': %s", self.url, exc.message)
                    continue
                folder.mkdir(exist_ok=True)
                if name in wanted and self._sync_model(name, folder, by_model[name]):
                    changed.append(name)
            return changed

    def _remove_gone(self, names: set[str]) -> list[str]:
        removed = []
        for child in list(self.local.iterdir()):
            if child.name in names or child.name.startswith("."):
                continue
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child.name)
        for key in [k for k in self._files if k.partition("/")[0] not in names]:
            del self._files[key]
        return removed

    def _sync_model(self, name: str, folder: Path, objects: dict[str, tuple[tuple, str]]) -> bool:
        changed = False
        for key in [k for k in self._files if k.startswith(name + "/") and k not in objects]:
            del self._files[key]
            (self.local / key).unlink(missing_ok=True)
            changed = True
        for key, (signature, path) in sorted(objects.items()):
            try:
                target = cache_path(self.local, key)
            except TritonError as exc:
                log.error("model repository '%s': %s", self.url, exc.message)
                continue
            if self._files.get(key) == signature and target.is_file():
                continue
            try:
                self._download(path, target)
            except Exception as exc:
                log.error("model repository '%s': failed to download '%s': %s", self.url, key, _describe(exc))
                continue
            self._files[key] = signature
            changed = True
        _prune_empty(folder)
        return changed

    def _download(self, path: str, target: Path) -> None:
        """Download next to the target, then rename: a scan never sees half a file."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.download")
        try:
            self._fs.get_file(path, str(partial))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def _prune_empty(folder: Path) -> None:
    """Remove the empty folders below ``folder`` (left by deleted objects)."""
    for root, _, _ in os.walk(folder, topdown=False):
        if root != str(folder):
            try:
                os.rmdir(root)
            except OSError:
                pass  # not empty


# --- every repository of a server --------------------------------------------------------------------


class Repositories:
    """The server's repositories as local folders: local ones as given, remote ones as their copies."""

    def __init__(self, repositories: list[str | Path], environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.remotes: list[RemoteRepository] = []
        self.local_paths: list[Path] = []
        self._temp: Path | None = None
        self._mounted: list[tuple[Path, Path, str]] = []  # (mount directory, copy inside it, its variable)
        for repository in repositories:
            if not is_remote(repository):
                self.local_paths.append(Path(repository))
                continue
            location = parse_remote(str(repository))
            variable = BACKENDS[location.scheme][2]
            mount = environ.get(variable)
            if mount:
                base = Path(mount)
            else:
                if self._temp is None:
                    self._temp = Path(tempfile.mkdtemp(prefix="tritonlite-remote-"))
                base = self._temp / location.scheme
            local = base.joinpath(*location.mirror_parts())
            if mount:
                self._mounted.append((base, local, variable))
            self.remotes.append(RemoteRepository(location, local))
            self.local_paths.append(local)
        self._closed = False
        if self.remotes:
            atexit.register(self.close)

    def sync(self, models: Collection[str] | None = None) -> list[str]:
        """Bring every remote copy up to date (see RemoteRepository.sync); the first error stops it."""
        changed: list[str] = []
        for mount, _, variable in self._mounted:
            if not mount.is_dir():
                raise internal(f"mount directory {mount} does not exist (set by {variable})")
        for remote in self.remotes:
            changed += remote.sync(models)
        return changed

    def close(self) -> None:
        """Remove the local copies: the temporary folder, and what was written in mount directories."""
        if self._closed:
            return
        self._closed = True
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
        for mount, local, _ in self._mounted:
            shutil.rmtree(local, ignore_errors=True)
            parent = local.parent
            while parent != mount and parent.is_relative_to(mount):
                try:
                    parent.rmdir()
                except OSError:
                    break
                parent = parent.parent
