"""A request handed to a model version: awaited by a coroutine, or called back when it settles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

from tritonlite.core.types import InferRequest, InferResponse

Outcome = Callable[[asyncio.Future], "InferResponse | BaseException"]


class Submission:
    """The handle of one queued request: ``await`` it, or ``add_done_callback``; ``cancel``
    withdraws the request if it has not run.

    The scheduler's future is turned into the client's answer once (``outcome``: statistics,
    classification, the response cache) by the first of its callbacks, so the statistics are
    right whether anyone reads the answer or not. ``result()`` then gives the response or raises
    the request's error (``asyncio.CancelledError`` when it was withdrawn).
    """

    __slots__ = ("request", "_future", "_outcome", "_settled")

    def __init__(self, request: InferRequest, future: asyncio.Future, outcome: Outcome | None) -> None:
        self.request = request
        self._future = future
        self._outcome: Outcome | InferResponse | BaseException | None = outcome
        self._settled = outcome is None
        if outcome is not None:
            future.add_done_callback(self._settle)  # first: before any reader's callback

    @classmethod
    def answered(cls, request: InferRequest, response: InferResponse) -> Submission:
        """A submission whose answer is known already (a response cache hit)."""
        future = asyncio.get_running_loop().create_future()
        future.set_result(response)
        submission = cls(request, future, None)
        submission._outcome = response
        return submission

    def _settle(self, future: asyncio.Future | None = None) -> None:
        if not self._settled:
            self._settled = True
            try:
                self._outcome = self._outcome(self._future)  # type: ignore[operator]
            except Exception as exc:  # a bug: answered as an error, not left unsettled
                self._outcome = exc

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> bool:
        """Withdraw the request (a queued one leaves its queue unexecuted); False once it is done."""
        return self._future.cancel()

    def add_done_callback(self, callback: Callable[[Submission], Any]) -> None:
        """Call ``callback(self)`` on the event loop once the request has settled."""
        self._future.add_done_callback(lambda _: callback(self))

    def result(self) -> InferResponse:
        """The response; raises the request's error. Only once ``done()``."""
        self._settle()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, InferResponse]:
        future = self._future
        if not future.done():
            yield from future.__await__()  # cancelling the awaiting task cancels the future
        return self.result()
