"""The engine: what the frontends talk to. It knows models and requests, not HTTP or gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tritonlite import TRITON_COMPATIBLE_VERSION
from tritonlite.core.errors import TritonError, unsupported
from tritonlite.core.types import InferRequest, InferResponse
from tritonlite.models.manager import ModelManager
from tritonlite.models.model import ModelVersion

EXTENSIONS = [
    "classification",
    "model_repository",
    "model_configuration",
    "binary_tensor_data",
    "parameters",
]


@dataclass
class EngineOptions:
    repositories: list[Path]
    server_id: str = "triton"
    strict_model_config: bool = False
    strict_readiness: bool = True
    extensions: list[str] = field(default_factory=lambda: list(EXTENSIONS))


class Engine:
    """Server state shared by every frontend: the models, readiness and metadata."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options
        self.models = ModelManager(options.repositories, options.strict_model_config)
        self.live = False
        self.accepting = False

    async def start(self) -> None:
        self.live = True
        await self.models.load_all()
        self.accepting = True

    async def stop(self) -> None:
        self.accepting = False
        await self.models.shutdown()
        self.live = False

    # --- health and metadata ---------------------------------------------------------------------

    def is_live(self) -> bool:
        return self.live

    def is_ready(self) -> bool:
        if not (self.live and self.accepting):
            return False
        return self.models.all_ready() if self.options.strict_readiness else True

    def server_metadata(self) -> dict:
        return {
            "name": self.options.server_id,
            "version": TRITON_COMPATIBLE_VERSION,
            "extensions": list(self.options.extensions),
        }

    def model_metadata(self, name: str, version: str = "") -> dict:
        model = self.models.find(name, version)
        entry = self.models.models[name]
        config = model.config
        batch = [-1] if model.max_batch_size > 0 else []
        return {
            "name": name,
            "versions": [str(v) for v in sorted(entry.versions) if entry.versions[v].ready],
            "platform": config.platform or config.backend,
            "inputs": [
                {"name": s.name, "datatype": s.datatype, "shape": batch + list(s.dims)} for s in model.inputs.values()
            ],
            "outputs": [
                {"name": s.name, "datatype": s.datatype, "shape": batch + list(s.dims)} for s in model.outputs.values()
            ],
        }

    def model_config(self, name: str, version: str = "") -> dict:
        return self.ready_model(name, version).config_json

    def ready_model(self, name: str, version: str = "") -> ModelVersion:
        return self.models.get(name, version)

    # --- inference -------------------------------------------------------------------------------

    async def infer(self, request: InferRequest) -> InferResponse:
        return await self.models.get(request.model_name, request.model_version).infer(request)

    def not_supported(self, what: str) -> TritonError:
        return unsupported(f"{what} is not supported by tritonlite yet")
