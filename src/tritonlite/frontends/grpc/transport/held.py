"""Input read in parts: held, uncopied, until a whole unit (a frame, a message) can be there."""

from __future__ import annotations


class Held:
    """What is left of earlier reads, joined once enough has come for the unit under way."""

    __slots__ = ("_parts", "_size", "_need")

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._size = 0
        self._need = 0  # bytes the unit under way needs

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, data: bytes | memoryview, *, wait: bool = True) -> bytes | None:
        """``data`` after what is held, joined in one copy, or None while the unit under way is
        still short of its bytes (``wait=False``: joined whatever is there)."""
        self._parts.append(data)
        self._size += len(data)
        if wait and self._size < self._need:
            return None
        joined = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return joined

    def keep(self, view: memoryview, used: int, need: int) -> None:
        """Hold ``view`` past its first ``used`` bytes (if any), until ``need`` bytes are there."""
        if used < len(view):
            rest = view[used:]
            self._parts.append(rest)
            self._size = len(rest)
            self._need = need
