"""ResponseStream: ordered, thread-safe, and bounded: a sender on another thread waits for a slow reader."""

from __future__ import annotations

import asyncio
import threading
import time

from tritonlite.core.errors import ErrorKind, TritonError
from tritonlite.core.streaming import ResponseStream


def _sender(stream: ResponseStream, count: int, sent: list[int]) -> threading.Thread:
    def send() -> None:
        for index in range(count):
            stream.put(index, index == count - 1)  # type: ignore[arg-type]  # any object travels
            sent.append(index)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


async def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_sender_thread_waits_for_a_reader_that_does_not_read():
    asyncio.run(_a_sender_thread_waits_for_a_reader_that_does_not_read())


async def _a_sender_thread_waits_for_a_reader_that_does_not_read():
    stream = ResponseStream(limit=8)
    sent: list[int] = []
    thread = _sender(stream, 1000, sent)
    await _wait_until(lambda: len(sent) == 8)
    await asyncio.sleep(0.1)
    assert len(sent) == 8  # no more than the limit waits unread
    assert thread.is_alive()
    got = []
    final = False
    while not final:
        item, final = await stream.get()
        got.append(item)
    assert got == list(range(1000))  # in order, none lost
    thread.join(5)
    assert not thread.is_alive()


def test_a_reader_that_goes_away_releases_a_waiting_sender():
    asyncio.run(_a_reader_that_goes_away_releases_a_waiting_sender())


async def _a_reader_that_goes_away_releases_a_waiting_sender():
    stream = ResponseStream(limit=4)
    sent: list[int] = []
    thread = _sender(stream, 100, sent)
    await _wait_until(lambda: len(sent) == 4)
    assert await stream.get() == (0, False)
    stream.close()
    thread.join(5)
    assert not thread.is_alive() and len(sent) == 100  # the rest were dropped, not buffered
    assert stream.get_nowait() is None


def test_sends_on_the_event_loop_never_wait():
    asyncio.run(_sends_on_the_event_loop_never_wait())


async def _sends_on_the_event_loop_never_wait():
    stream = ResponseStream(limit=2)
    for index in range(10):  # on the loop's own thread: waiting would hang the loop
        stream.put(index, False)  # type: ignore[arg-type]
    stream.put(TritonError(ErrorKind.INTERNAL, "boom"), True)
    stream.put(99, True)  # type: ignore[arg-type]  # after the final one: dropped
    items = [await stream.get() for _ in range(11)]
    assert [item for item, _ in items[:10]] == list(range(10))
    assert items[10][1] is True and stream.get_nowait() is None
