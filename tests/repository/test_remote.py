"""Unit tests of tritonlite.repository.remote: URLs, credentials, cache path safety, syncing a copy."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.repository.remote import (
    RemoteLocation,
    RemoteRepository,
    Repositories,
    cache_path,
    filesystem_options,
    is_remote,
    open_filesystem,
    parse_remote,
)

fsspec = pytest.importorskip("fsspec")

# --- URLs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, bucket, prefix, endpoint",
    [
        ("s3://bucket/path/to/repo", "bucket", "path/to/repo", ""),
        ("s3://bucket", "bucket", "", ""),
        ("s3://bucket/", "bucket", "", ""),
        ("s3://bucket//a///b/", "bucket", "a/b", ""),  # extra slashes dropped, as in Triton
        ("s3://127.0.0.1:9000/bucket/models", "bucket", "models", "http://127.0.0.1:9000"),
        ("s3://minio.local:9000/bucket", "bucket", "", "http://minio.local:9000"),
        ("s3://http://host:80/bucket/p", "bucket", "p", "http://host:80"),
        ("s3://https://s3.example.com:443/bucket/p/q", "bucket", "p/q", "https://s3.example.com:443"),
    ],
)
def test_parse_s3(url, bucket, prefix, endpoint):
    location = parse_remote(url)
    assert (location.scheme, location.bucket, location.prefix, location.endpoint) == ("s3", bucket, prefix, endpoint)
    assert location.url == url
    assert location.root == (f"{bucket}/{prefix}" if prefix else bucket)


def test_parse_gcs_and_azure():
    gcs = parse_remote("gs://my-bucket/models/v1")
    assert (gcs.scheme, gcs.bucket, gcs.prefix, gcs.endpoint, gcs.account) == ("gs", "my-bucket", "models/v1", "", "")
    azure = parse_remote("as://account/container/path/to/repo")
    assert (azure.scheme, azure.account, azure.bucket, azure.prefix) == ("as", "account", "container", "path/to/repo")
    assert parse_remote("as://account/container").root == "container"


@pytest.mark.parametrize(
    "url, words",
    [
        ("s3://", "no bucket name"),
        ("s3:///", "no bucket name"),
        ("s3://https://host/bucket", "host:port"),
        ("s3://bucket/../other", "'..'"),
        ("s3://bucket/a/./b", "'.'"),
        ("gs://", "no bucket name"),
        ("as://account", "as://account/container/path"),
        ("ftp://host/path", "expected s3://"),
    ],
)
def test_bad_urls_name_the_repository(url, words):
    with pytest.raises(ValueError) as info:
        parse_remote(url)
    assert url in str(info.value) and words in str(info.value)


def test_is_remote():
    assert is_remote("s3://bucket") and is_remote("gs://b/p") and is_remote("as://a/c")
    assert not is_remote("/models") and not is_remote("models") and not is_remote("s3:/bucket")
    assert not is_remote(Path("s3://bucket"))  # a local path is never a URL


def test_mirror_parts_follow_the_remote_layout():
    assert parse_remote("s3://bucket/a/b").mirror_parts() == ["bucket", "a", "b"]
    assert parse_remote("s3://127.0.0.1:9000/bucket/a").mirror_parts() == ["127.0.0.1_9000", "bucket", "a"]
    assert parse_remote("as://acct/cont/p").mirror_parts() == ["acct", "cont", "p"]


# --- cache path safety ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../evil", "m/../../evil", "/etc/passwd", "m//x", "m/./x", "m\\..\\x", "", "m/.."])
def test_keys_that_leave_the_cache_are_refused(tmp_path, key):
    with pytest.raises(TritonError) as info:
        cache_path(tmp_path, key)
    assert info.value.kind == ErrorKind.INVALID_ARG
    assert "would leave the repository's cache folder" in info.value.message


def test_a_symlink_out_of_the_cache_is_refused(tmp_path):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "m").symlink_to(outside)
    with pytest.raises(TritonError):
        cache_path(root, "m/config.pbtxt")


def test_plain_keys_stay_inside(tmp_path):
    assert cache_path(tmp_path, "m/1/model.py") == (tmp_path / "m" / "1" / "model.py").resolve()


# --- credentials -----------------------------------------------------------------------------------


def test_s3_options_endpoint_and_fresh_listings():
    options = filesystem_options(parse_remote("s3://127.0.0.1:9000/b/p"), environ={})
    assert options["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9000"}
    assert options["use_listings_cache"] is False and options["skip_instance_cache"] is True
    assert "key" not in options  # environment and ~/.aws are read by botocore's own chain
    assert filesystem_options(parse_remote("s3://b/p"), environ={})["client_kwargs"] == {}


def test_credential_file_longest_match_wins(tmp_path):
    path = tmp_path / "cloud_credential.json"
    path.write_text(
        json.dumps(
            {
                "s3": {
                    "": {"key_id": "K0", "secret_key": "S0", "region": "r0", "session_token": "", "profile": ""},
                    "s3://bucket-2": {"key_id": "K2", "secret_key": "S2", "region": "r2", "session_token": "T2"},
                },
                "gs": {"": "/creds/default.json", "gs://special": "/creds/special.json"},
                "as": {"": {"account_str": "acct", "account_key": "AKEY"}},
            }
        )
    )
    environ = {"TRITON_CLOUD_CREDENTIAL_PATH": str(path)}
    two = filesystem_options(parse_remote("s3://bucket-2/models"), environ)
    assert (two["key"], two["secret"], two["token"], two["client_kwargs"]["region_name"]) == ("K2", "S2", "T2", "r2")
    other = filesystem_options(parse_remote("s3://other/models"), environ)
    assert (other["key"], other["secret"], other["client_kwargs"]["region_name"]) == ("K0", "S0", "r0")
    assert "token" not in other and "profile" not in other
    assert filesystem_options(parse_remote("gs://special/m"), environ)["token"] == "/creds/special.json"
    assert filesystem_options(parse_remote("gs://plain/m"), environ)["token"] == "/creds/default.json"
    assert filesystem_options(parse_remote("as://acct/c/p"), environ)["account_key"] == "AKEY"


def test_unreadable_credential_file_is_a_clear_error(tmp_path):
    environ = {"TRITON_CLOUD_CREDENTIAL_PATH": str(tmp_path / "missing.json")}
    with pytest.raises(TritonError) as info:
        filesystem_options(parse_remote("s3://b/p"), environ)
    assert "cloud credential file" in info.value.message and "missing.json" in info.value.message


def test_gcs_and_azure_read_their_environment_variables():
    gcs = filesystem_options(parse_remote("gs://b/p"), {"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"})
    assert gcs["token"] == "/k.json"
    assert "token" not in filesystem_options(parse_remote("gs://b/p"), {})  # gcsfs's default chain
    azure = filesystem_options(parse_remote("as://acct/c/p"), {"AZURE_STORAGE_KEY": "secret"})
    assert (azure["account_name"], azure["account_key"]) == ("acct", "secret")
    chain = filesystem_options(parse_remote("as://acct/c/p"), {})
    assert chain["anon"] is False and "account_key" not in chain


# --- missing libraries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, package, extra", [("s3://b/p", "s3fs", "s3"), ("gs://b/p", "gcsfs", "gcs"), ("as://a/c/p", "adlfs", "azure")]
)
def test_a_missing_library_names_the_extra(monkeypatch, url, package, extra):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    with pytest.raises(TritonError) as info:
        open_filesystem(parse_remote(url), environ={})
    assert info.value.message == (
        f"model repository '{url}' needs the '{package}' package: pip install 'tritonlite[{extra}]'"
    )


def test_gcs_filesystem_when_gcsfs_is_installed():
    gcsfs = pytest.importorskip("gcsfs")
    fs = open_filesystem(parse_remote("gs://bucket/models"), environ={"GOOGLE_APPLICATION_CREDENTIALS": ""})
    assert isinstance(fs, gcsfs.GCSFileSystem)


def test_azure_filesystem_when_adlfs_is_installed():
    adlfs = pytest.importorskip("adlfs")
    fs = open_filesystem(parse_remote("as://account/container/models"), environ={"AZURE_STORAGE_KEY": "a2V5"})
    assert isinstance(fs, adlfs.AzureBlobFileSystem)


# --- syncing a copy (fsspec's memory filesystem stands in for a bucket) ---------------------------------


@pytest.fixture
def bucket():
    fs = fsspec.filesystem("memory", skip_instance_cache=True)
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    yield fs
    fs.store.clear()


def put(fs, key: str, data: bytes = b"x") -> None:
    fs.pipe(f"/bucket/repo/{key}", data)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def repository(fs, tmp_path) -> RemoteRepository:
    return RemoteRepository(RemoteLocation("s3://bucket/repo", "s3", "bucket", "repo"), tmp_path / "copy", fs)


def test_sync_mirrors_the_layout_and_downloads_only_changes(bucket, tmp_path):
    put(bucket, "a/config.pbtxt", b"A")
    put(bucket, "a/1/model.py", b"a1")
    put(bucket, "b/config.pbtxt", b"B")
    put(bucket, "README.md", b"beside the models: ignored")
    remote = repository(bucket, tmp_path)
    assert sorted(remote.sync()) == ["a", "b"]
    copy = tmp_path / "copy"
    assert files(copy) == {"a/config.pbtxt": b"A", "a/1/model.py": b"a1", "b/config.pbtxt": b"B"}
    untouched = (copy / "a" / "1" / "model.py").stat().st_mtime_ns

    put(bucket, "b/config.pbtxt", b"B2")
    assert remote.sync() == ["b"]
    assert (copy / "b" / "config.pbtxt").read_bytes() == b"B2"
    assert (copy / "a" / "1" / "model.py").stat().st_mtime_ns == untouched
    assert remote.sync() == []  # nothing changed: nothing downloaded


def test_sync_removes_deleted_files_and_models(bucket, tmp_path):
    put(bucket, "a/config.pbtxt")
    put(bucket, "a/2/model.py")
    put(bucket, "b/config.pbtxt")
    remote = repository(bucket, tmp_path)
    remote.sync()
    bucket.rm("/bucket/repo/a/2/model.py")
    bucket.rm("/bucket/repo/b/config.pbtxt")
    assert sorted(remote.sync()) == ["a", "b"]
    copy = tmp_path / "copy"
    assert files(copy) == {"a/config.pbtxt": b"x"}
    assert not (copy / "a" / "2").exists() and not (copy / "b").exists()


def test_sync_of_named_models_lists_the_others_without_downloading(bucket, tmp_path):
    put(bucket, "wanted/config.pbtxt")
    put(bucket, "other/config.pbtxt")
    remote = repository(bucket, tmp_path)
    assert remote.sync(["wanted"]) == ["wanted"]
    copy = tmp_path / "copy"
    assert (copy / "other").is_dir() and not any((copy / "other").iterdir())  # the index can list it
    assert (copy / "wanted" / "config.pbtxt").is_file()
    assert remote.sync(["other"]) == ["other"]
    assert (copy / "other" / "config.pbtxt").is_file()


def test_keys_that_would_escape_are_skipped_with_an_error(bucket, tmp_path, caplog):
    put(bucket, "m/config.pbtxt")
    put(bucket, "m/../../escaped", b"evil")
    remote = repository(bucket, tmp_path)
    with caplog.at_level(logging.ERROR):
        remote.sync()
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "copy" / "escaped").exists()
    assert "would leave the repository's cache folder" in caplog.text


def test_an_empty_repository_fails_the_first_sync_only(bucket, tmp_path):
    remote = repository(bucket, tmp_path)
    with pytest.raises(TritonError) as info:
        remote.sync()
    assert "s3://bucket/repo" in info.value.message and "no objects" in info.value.message
    put(bucket, "m/config.pbtxt")
    remote.sync()
    bucket.rm("/bucket/repo/m/config.pbtxt")
    assert remote.sync() == ["m"]  # every model deleted: the copy is empty, not an error
    assert list((tmp_path / "copy").iterdir()) == []


def test_listing_errors_name_the_repository(tmp_path):
    class Unreachable:
        def invalidate_cache(self):
            pass

        def find(self, path, detail=False):
            raise ConnectionError("Could not connect to the endpoint URL")

    remote = RemoteRepository(parse_remote("s3://127.0.0.1:1/bucket/repo"), tmp_path / "copy", Unreachable())
    with pytest.raises(TritonError) as info:
        remote.sync()
    assert info.value.message == (
        "failed to read model repository 's3://127.0.0.1:1/bucket/repo': "
        "ConnectionError: Could not connect to the endpoint URL"
    )


def test_a_stale_copy_from_an_earlier_run_is_replaced(bucket, tmp_path):
    stale = tmp_path / "copy" / "gone"
    stale.mkdir(parents=True)
    (tmp_path / "copy" / "m").mkdir()
    (tmp_path / "copy" / "m" / "old.txt").write_text("left over")
    put(bucket, "m/config.pbtxt")
    repository(bucket, tmp_path).sync()
    assert files(tmp_path / "copy") == {"m/config.pbtxt": b"x"}


# --- the server's repositories -------------------------------------------------------------------------


def test_local_and_remote_repositories(tmp_path):
    repositories = Repositories([tmp_path / "local", "s3://bucket/models", "gs://other/x"], environ={})
    assert repositories.local_paths[0] == tmp_path / "local"
    assert [r.url for r in repositories.remotes] == ["s3://bucket/models", "gs://other/x"]
    s3_copy, gcs_copy = repositories.local_paths[1:]
    assert s3_copy.parts[-3:] == ("s3", "bucket", "models") and gcs_copy.parts[-3:] == ("gs", "other", "x")
    temp = s3_copy.parents[2]
    assert temp.name.startswith("tritonlite-remote-") and temp.is_dir()
    repositories.close()
    assert not temp.exists()
    repositories.close()  # twice is fine


def test_mount_directory(tmp_path):
    mount = tmp_path / "mount"
    mount.mkdir()
    repositories = Repositories(["s3://bucket/models"], environ={"TRITON_AWS_MOUNT_DIRECTORY": str(mount)})
    assert repositories.local_paths == [mount / "bucket" / "models"]
    (mount / "bucket" / "models" / "m").mkdir(parents=True)
    repositories.close()
    assert mount.is_dir() and list(mount.iterdir()) == []  # left empty, as Triton expects it


def test_missing_mount_directory_is_an_error(tmp_path):
    environ = {"TRITON_GCS_MOUNT_DIRECTORY": str(tmp_path / "nope")}
    repositories = Repositories(["gs://bucket/models"], environ=environ)
    with pytest.raises(TritonError) as info:
        repositories.sync()
    assert "TRITON_GCS_MOUNT_DIRECTORY" in info.value.message and "nope" in info.value.message
    repositories.close()


def test_only_local_repositories_make_no_temp_folder(tmp_path):
    before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    repositories = Repositories([tmp_path], environ={})
    assert repositories.remotes == [] and repositories.local_paths == [tmp_path]
    assert not {n for n in set(os.listdir(os.environ.get("TMPDIR", "/tmp"))) - before if "tritonlite-remote" in n}
