"""Writes examples/dali_resnet_repository: a DALI preprocessing pipeline, a small TorchScript CNN and
the ensemble that chains them (Triton's DALI + ResNet-50 tutorial, on the CPU, without downloads).

    .venv/bin/python scripts/make_dali_example.py

Needs DALI (``pip install tritonlite[dali]``) and torch. The CNN's weights come from a fixed seed;
it has ResNet-50's interface (``INPUT__0`` [3,224,224] -> ``OUTPUT__0`` [1000]), not its layers.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = ROOT / "examples" / "dali_resnet_repository"
sys.path.insert(0, str(ROOT / "src"))

from tritonlite.backends.dali.pipeline_def import parse  # noqa: E402


def preprocessing_pipeline() -> bytes:
    """decode -> resize to 224x224 -> HWC to CHW -> /255, every operator on the CPU."""
    import nvidia.dali as dali
    import nvidia.dali.fn as fn
    import nvidia.dali.types as types

    @dali.pipeline_def(batch_size=32, num_threads=2, device_id=None)
    def pipeline():  # type: ignore[no-untyped-def]
        images = fn.external_source(device="cpu", name="DALI_INPUT_0", dtype=types.UINT8, ndim=1)
        images = fn.decoders.image(images, device="cpu", output_type=types.RGB)
        images = fn.resize(images, resize_x=224, resize_y=224)
        images = fn.transpose(images, perm=[2, 0, 1])
        return images / 255

    return strip_origins(pipeline().serialize())


def strip_origins(serialized: bytes) -> bytes:
    """The pipeline without the ``_origin_stack_*`` arguments (where this script ran), so the file
    is the same on every machine."""
    definition = parse(serialized)
    for op in definition.op:
        kept = [arg for arg in op.args if not arg.name.startswith("_origin_stack")]
        del op.args[:]
        op.args.extend(kept)
    return definition.SerializeToString(deterministic=True)


def small_cnn():  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(50)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, kernel_size=7, stride=4, padding=3),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 1000),
    ).eval()
    return torch.jit.script(model)


DALI_CONFIG = """name: "resnet50_dali"
backend: "dali"
max_batch_size: 32
input [
  {
    name: "DALI_INPUT_0"
    data_type: TYPE_UINT8
    dims: [ -1 ]
    allow_ragged_batch: true
  }
]
output [
  {
    name: "DALI_OUTPUT_0"
    data_type: TYPE_FP32
    dims: [ 3, 224, 224 ]
  }
]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""

PYTORCH_CONFIG = """name: "resnet50_pytorch"
platform: "pytorch_libtorch"
max_batch_size: 32
input [
  {
    name: "INPUT__0"
    data_type: TYPE_FP32
    dims: [ 3, 224, 224 ]
  }
]
output [
  {
    name: "OUTPUT__0"
    data_type: TYPE_FP32
    dims: [ 1000 ]
  }
]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { count: 1 kind: KIND_CPU } ]
"""

ENSEMBLE_CONFIG = """name: "resnet50_ensemble"
platform: "ensemble"
max_batch_size: 32
input [
  {
    name: "ENSEMBLE_INPUT_0"
    data_type: TYPE_UINT8
    dims: [ -1 ]
  }
]
output [
  {
    name: "ENSEMBLE_OUTPUT_0"
    data_type: TYPE_FP32
    dims: [ 1000 ]
  }
]
ensemble_scheduling {
  step [
    {
      model_name: "resnet50_dali"
      model_version: -1
      input_map { key: "DALI_INPUT_0" value: "ENSEMBLE_INPUT_0" }
      output_map { key: "DALI_OUTPUT_0" value: "preprocessed_image" }
    },
    {
      model_name: "resnet50_pytorch"
      model_version: -1
      input_map { key: "INPUT__0" value: "preprocessed_image" }
      output_map { key: "OUTPUT__0" value: "ENSEMBLE_OUTPUT_0" }
    }
  ]
}
"""


def main() -> None:
    import torch

    for name, config in (
        ("resnet50_dali", DALI_CONFIG),
        ("resnet50_pytorch", PYTORCH_CONFIG),
        ("resnet50_ensemble", ENSEMBLE_CONFIG),
    ):
        (REPOSITORY / name / "1").mkdir(parents=True, exist_ok=True)
        (REPOSITORY / name / "config.pbtxt").write_text(config)
    (REPOSITORY / "resnet50_dali" / "1" / "model.dali").write_bytes(preprocessing_pipeline())
    torch.jit.save(small_cnn(), str(REPOSITORY / "resnet50_pytorch" / "1" / "model.pt"))
    (REPOSITORY / "resnet50_ensemble" / "1" / ".gitkeep").write_text("")
    print(f"wrote {REPOSITORY}")


if __name__ == "__main__":
    main()
