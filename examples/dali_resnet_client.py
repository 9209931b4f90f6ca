"""Classify images with the DALI -> CNN ensemble of examples/dali_resnet_repository.

    tritonlite-server --model-repository=examples/dali_resnet_repository &
    python examples/dali_resnet_client.py [IMAGE.jpg ...]

Without image paths it sends two generated JPEGs (needs Pillow). The encoded images of one request
are padded with zeros to the same length (JPEG decoders ignore what follows the image).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient


def generated_images() -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for height, width in ((300, 400), (180, 240)):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        images.append(buffer.getvalue())
    return images


def padded_batch(encoded: list[bytes]) -> np.ndarray:
    """[N, longest] UINT8: one encoded image per row, zeros after it."""
    batch = np.zeros((len(encoded), max(len(image) for image in encoded)), dtype=np.uint8)
    for row, image in enumerate(encoded):
        batch[row, : len(image)] = np.frombuffer(image, dtype=np.uint8)
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("-u", "--url", default="localhost:8000")
    parser.add_argument("-m", "--model", default="resnet50_ensemble")
    parser.add_argument("-c", "--classes", type=int, default=3)
    args = parser.parse_args()

    encoded = [path.read_bytes() for path in args.images] or generated_images()
    batch = padded_batch(encoded)
    client = httpclient.InferenceServerClient(url=args.url)
    inputs = [httpclient.InferInput("ENSEMBLE_INPUT_0", list(batch.shape), "UINT8")]
    inputs[0].set_data_from_numpy(batch, binary_data=True)
    outputs = [httpclient.InferRequestedOutput("ENSEMBLE_OUTPUT_0", binary_data=True, class_count=args.classes)]
    result = client.infer(args.model, inputs, outputs=outputs)
    for index, classes in enumerate(result.as_numpy("ENSEMBLE_OUTPUT_0")):
        names = args.images[index].name if args.images else f"image {index}"
        print(names, [entry.decode() for entry in classes])


if __name__ == "__main__":
    main()
