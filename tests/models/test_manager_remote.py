"""The model manager on a remote repository: what it downloads when, and polls that cannot reach the bucket."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tritonlite.core.errors import TritonError
from tritonlite.models.manager import ModelManager

fsspec = pytest.importorskip("fsspec")

CONFIG = """
name: "{name}"
backend: "python"
input [{{ name: "INPUT0" data_type: TYPE_FP32 dims: [ -1 ] }}]
output [{{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ -1 ] }}]
"""

MODEL = """
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(
            r, "INPUT0").as_numpy())]) for r in requests]
"""


class Bucket:
    """fsspec's memory filesystem as the bucket; ``broken`` makes listings fail as an unreachable one would."""

    def __init__(self) -> None:
        self.fs = fsspec.filesystem("memory", skip_instance_cache=True)
        self.fs.store.clear()
        self.broken = False

    def put_model(self, name: str, versions=(1,)) -> None:
        self.fs.pipe(f"/bucket/repo/{name}/config.pbtxt", CONFIG.format(name=name).encode())
        for version in versions:
            self.fs.pipe(f"/bucket/repo/{name}/{version}/model.py", MODEL.encode())

    def invalidate_cache(self) -> None:
        pass

    def find(self, path, detail=False):
        if self.broken:
            raise ConnectionError("Could not connect to the endpoint URL")
        return self.fs.find(path, detail=detail)

    def get_file(self, remote, local):
        return self.fs.get_file(remote, local)


@pytest.fixture
def bucket():
    bucket = Bucket()
    yield bucket
    bucket.fs.store.clear()


def manager_on(bucket: Bucket) -> ModelManager:
    manager = ModelManager(["s3://bucket/repo"])
    manager.sources.remotes[0]._fs = bucket
    return manager


def test_poll_reloads_what_changed_and_survives_an_unreachable_bucket(bucket, caplog):
    bucket.put_model("a")
    bucket.put_model("b")
    manager = manager_on(bucket)
    copy = manager.repositories[0]

    async def scenario():
        await manager.load_all()
        assert manager.is_ready("a") and manager.is_ready("b")
        assert (copy / "a" / "1" / "model.py").is_file()

        assert await manager.poll() is False  # nothing changed

        bucket.broken = True
        with caplog.at_level(logging.ERROR):
            assert await manager.poll() is False
        assert "failed to read model repository 's3://bucket/repo'" in caplog.text
        assert manager.is_ready("a") and manager.is_ready("b")  # nothing unloaded

        bucket.broken = False
        bucket.put_model("a", versions=(1, 2))
        bucket.fs.rm("/bucket/repo/b", recursive=True)
        assert await manager.poll() is True
        assert manager.is_ready("a", "2") and not manager.is_ready("a", "1")  # latest version policy
        assert "b" not in manager.models and not (copy / "b").exists()
        await manager.shutdown()

    asyncio.run(scenario())
    assert not copy.exists()  # the temporary copy goes with the manager


def test_explicit_loads_download_only_the_models_they_load(bucket):
    bucket.put_model("a")
    bucket.put_model("b")
    manager = manager_on(bucket)
    manager.list_unloaded = True
    copy = manager.repositories[0]

    async def scenario():
        await manager.load_all(only=["a"])
        assert manager.is_ready("a")
        assert (copy / "a" / "config.pbtxt").is_file() and list((copy / "b").iterdir()) == []
        assert [row["name"] for row in manager.index()] == ["a", "b"]

        bucket.put_model("c")  # uploaded after startup
        await manager.load_model("c")
        await manager.load_model("b")
        assert manager.is_ready("b") and manager.is_ready("c")

        bucket.broken = True
        with pytest.raises(TritonError) as info:
            await manager.load_model("a")
        assert "failed to read model repository 's3://bucket/repo'" in info.value.message
        assert manager.is_ready("a")
        await manager.shutdown()

    asyncio.run(scenario())


def test_startup_fails_on_an_unreachable_bucket(bucket):
    bucket.broken = True
    manager = manager_on(bucket)

    async def scenario():
        with pytest.raises(TritonError) as info:
            await manager.load_all()
        assert info.value.message == (
            "failed to read model repository 's3://bucket/repo': ConnectionError: Could not connect to the endpoint URL"
        )
        await manager.shutdown()

    asyncio.run(scenario())
