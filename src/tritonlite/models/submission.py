"""A request handed to a model version: awaited by a coroutine, or called back when it settles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

from tritonlite.core.types import InferRequest, InferResponse

Outcome = Callable[["Submission"], "InferResponse | BaseException"]


class Submission:
    """The handle of one queued request: ``await`` it, or name its reader (``on_settled``); ``cancel``
    withdraws the request if it has not run.

    The scheduler's future is turned into the client's answer once (``outcome``: statistics,
    classification, the response cache) by the first of its callbacks, so the statistics are
    right whether anyone reads the answer or not. ``result()`` then gives the response or raises
    the request's error (``asyncio.CancelledError`` when it was withdrawn).
    """

    __slots__ = ("request", "future", "cache_key", "lookup_ns", "_outcome", "_settled", "_reader")

    def __init__(
        self, request: InferRequest, future: asyncio.Future, outcome: Outcome | None, cache_key: Any = None,
        lookup_ns: int = 0,
    ) -> None:  # fmt: skip
        self.request = request
        self.future = future  # the scheduler's
        self.cache_key = cache_key  # where the response goes in the response cache (None: not cached)
        self.lookup_ns = lookup_ns  # what the cache lookup took
        self._outcome: Outcome | InferResponse | BaseException | None = outcome
        self._settled = outcome is None
        self._reader: Callable[[Submission], Any] | None = None
        # one callback on the future settles, then calls the reader's (an awaiting task's wake-up,
        # registered later, runs after it too)
        future.add_done_callback(self._done)

    @classmethod
    def answered(cls, request: InferRequest, response: InferResponse) -> Submission:
        """A submission whose answer is known already (a response cache hit)."""
        future = asyncio.get_running_loop().create_future()
        future.set_result(response)
        submission = cls(request, future, None)
        submission._outcome = response
        return submission

    def _done(self, future: asyncio.Future) -> None:
        if not self._settled:
            self._settle()
        reader = self._reader
        if reader is not None:
            self._reader = None
            reader(self)

    def _settle(self) -> None:
        self._settled = True
        try:
            self._outcome = self._outcome(self)  # type: ignore[operator]
        except Exception as exc:  # a bug: answered as an error, not left unsettled
            self._outcome = exc

    def cancel(self) -> bool:
        """Withdraw the request (a queued one leaves its queue unexecuted, a running model sees
        ``is_cancelled()``); False once it is done."""
        if not self.future.cancel():
            return False
        self.request.cancel()
        return True

    def on_settled(self, reader: Callable[[Submission], Any]) -> None:
        """Call ``reader(self)`` once the request has settled (one reader; set it before then)."""
        self._reader = reader

    def result(self) -> InferResponse:
        """The response; raises the request's error. Only once the scheduler's future is done."""
        if not self._settled:
            self._settle()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, InferResponse]:
        future = self.future
        if not future.done():
            yield from future.__await__()  # cancelling the awaiting task cancels the future
        return self.result()
