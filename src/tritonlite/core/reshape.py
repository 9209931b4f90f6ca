"""The config's ``reshape``: what the model sees (``reshape``) against what the client sees (``dims``).

Every backend gives the model its inputs in the reshaped shape and the client its outputs in the
config's dims, as Triton does. ``spec`` is any config tensor with ``name``, ``dims`` and ``reshape``
(core.validation.TensorSpec, backends.framework.TensorInfo).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tritonlite.core.errors import internal, invalid_arg


def shape_text(shape) -> str:
    """A shape as Triton prints it: ``[-1,4]``."""
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def resolve_shape(shape: tuple[int, ...], count: int) -> tuple[int, ...] | None:
    """``shape`` with at most one -1 filled so that it holds ``count`` elements (None if impossible)."""
    unknown = [i for i, d in enumerate(shape) if d < 0]
    known = 1
    for d in shape:
        if d >= 0:
            known *= d
    if not unknown:
        return shape if known == count else None
    if len(unknown) > 1 or known == 0 or count % known:
        return None
    resolved = list(shape)
    resolved[unknown[0]] = count // known
    return tuple(resolved)


def to_model_shape(array: np.ndarray, spec: Any, batched: bool) -> np.ndarray:
    """Apply the config's ``reshape`` to an input (a whole batch when ``batched``)."""
    if spec.reshape is None:
        return array
    target = tuple(spec.reshape)
    if batched:
        batch = array.shape[0]
        resolved = resolve_shape(target, array.size // batch if batch else 0)
        shape = (batch, *resolved) if resolved is not None else None
    else:
        shape = resolve_shape(target, array.size)
    if shape is None:
        raise invalid_arg(
            f"unable to reshape input '{spec.name}' of shape {shape_text(array.shape)} to {shape_text(spec.reshape)}"
        )
    return array.reshape(shape)


def to_config_shape(array: np.ndarray, spec: Any, batched: bool) -> np.ndarray:
    """Give a model's output the config's ``dims`` (undoing ``reshape``, or filling a scalar).

    With a ``reshape`` the shape is Triton's: the model's batch dimension, then ``dims`` whose -1s
    take, in order, the model's sizes where ``reshape`` has -1; data that does not fill that shape
    fails the request with Triton's HTTP error.
    """
    if spec.reshape is not None:
        shape = _triton_output_shape(array.shape, spec, batched)
        if shape is None or int(np.prod(shape)) != array.size:
            raise internal(f"output tensor shape does not match size of output for '{spec.name}'")
        return array.reshape(shape)
    rank = len(spec.dims) + (1 if batched else 0)
    if array.ndim == rank:
        return array
    if batched:
        if array.ndim == 0:
            return array
        batch = array.shape[0]
        resolved = resolve_shape(spec.dims, array.size // batch if batch else 0)
        shape = (batch, *resolved) if resolved is not None else None
    else:
        shape = resolve_shape(spec.dims, array.size)
    return array if shape is None else array.reshape(shape)


def _triton_output_shape(model_shape: tuple[int, ...], spec: Any, batched: bool) -> list[int] | None:
    """Triton's InferenceResponse::Output::Reshape (None where the model's shape is too short)."""
    lead = 1 if batched and model_shape else 0
    variable = [model_shape[i + lead] for i, d in enumerate(spec.reshape) if d == -1 and i + lead < len(model_shape)]
    if len(variable) != sum(1 for d in spec.reshape if d == -1) or len(variable) < sum(1 for d in spec.dims if d == -1):
        return None
    sizes = iter(variable)
    return [*model_shape[:lead], *(next(sizes) if d == -1 else d for d in spec.dims)]
