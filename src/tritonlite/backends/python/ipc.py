"""The channel between tritonlite and a python model's stub process.

One ``AF_UNIX`` stream socket pair carries pickled control messages (pickle protocol 5), each
framed by a header: payload length, number of passed file descriptors, number of large buffers.
The data of a numpy array of at least ``SHM_THRESHOLD`` bytes is not pickled: pickle hands it
out of band, the sender copies it into its shared-memory segment (an anonymous ``memfd_create``
file; an unlinked file in ``/dev/shm`` where that is missing) and the payload starts with a table
of (offset, length) per buffer. The segment's descriptor travels once (``SCM_RIGHTS``), with the
first message that uses it; the receiver keeps it mapped and copies each buffer out while it
unpickles, so the arrays it gets are ordinary memory it owns. BYTES (object) arrays and small
arrays travel inside the pickle.

The two sides take turns strictly (each message answers the other side's last one), so by the
time a side writes its segment again the other side has copied out everything it sent before:
segments are reused, not re-created, and stay warm. A segment grows (to a power of two) when a
message needs more; one over ``RETAIN_MAX`` is used for a single message and then dropped.
Nothing has a name in ``/dev/shm``: when a process dies the kernel frees its segments with their
last descriptor or mapping, so nothing can be left behind.
"""

from __future__ import annotations

import array
import copyreg
import io
import mmap
import os
import pickle
import select
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tritonlite.core.errors import ErrorKind, TritonError

SHM_THRESHOLD = 64 * 1024  # arrays smaller than this travel inside the pickle
RETAIN_MAX = 64 * 1024 * 1024  # larger segments serve one message only
_MIN_SEGMENT = 1024 * 1024
_ALIGN = 64
_HEADER = struct.Struct("<QII")  # payload length, descriptors passed (0 or 1), large buffers
_TABLE_ENTRY = struct.Struct("<QQ")  # where a large buffer lies in the segment: offset, length
_ANCILLARY_SIZE = socket.CMSG_SPACE(4 * array.array("i").itemsize)
_POLL_MS = 1000  # how often a waiting parent checks that the stub process still runs
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


class ChannelClosed(Exception):
    """The other side is gone (end of stream, broken socket, exited process) or did not answer in time."""


class UnreadableMessage(Exception):
    """A message arrived whole but its body does not unpickle here (a class only the sender can
    import, say); ``kind`` (its first element) still tells what it was, and the channel is in step."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


class _Segment:
    """A shared-memory file and this process's mapping of it."""

    def __init__(self, size: int, received_fd: int | None = None) -> None:
        """A new segment of ``size`` bytes, or (with ``received_fd``) the other side's, mapped here."""
        self.fd = anonymous_file(size) if received_fd is None else received_fd
        self.size = size
        try:
            self.map = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED | _POPULATE)
        except BaseException:
            os.close(self.fd)
            raise
        if received_fd is not None:  # the mapping is all the receiver needs
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:  # a view is still alive somewhere: the mapping goes with it
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Channel:
    """Sends and receives messages. With ``alive`` (the parent's side) every wait is bounded:
    the socket is non-blocking and a wait gives up once ``alive()`` turns false or ``deadline``
    (a ``time.monotonic()`` value) has passed."""

    def __init__(self, sock: socket.socket, alive: Callable[[], bool] | None = None) -> None:
        self.sock = sock
        self.alive = alive
        self.deadline: float | None = None
        self._out: _Segment | None = None  # where this side writes large arrays
        self._in: _Segment | None = None  # the other side's segment, mapped here
        self._poll_in: Any = None
        self._poll_out: Any = None
        if alive is not None:
            sock.setblocking(False)
            self._poll_in = select.poll()
            self._poll_in.register(sock, select.POLLIN)
            self._poll_out = select.poll()
            self._poll_out.register(sock, select.POLLOUT)

    def close(self) -> None:
        self.sock.close()
        for segment in (self._out, self._in):
            if segment is not None:
                segment.close()
        self._out = self._in = None

    # --- sending ---------------------------------------------------------------------------------

    def send(self, message: tuple) -> None:
        """Send ``(kind, *body)``: pickled (large array buffers go to this side's segment), the
        kind apart, so that a receiver that cannot unpickle the body still knows the kind."""
        buffer = io.BytesIO()
        large: list[memoryview] = []
        pickler = pickle.Pickler(buffer, protocol=5, buffer_callback=lambda b: _in_band(b, large))
        pickler.dispatch_table = _DISPATCH
        pickler.dump(message[0])
        pickler.dump(message[1:])
        segment, fds, table = self._place(large) if large else (None, [], b"")
        payload = buffer.getbuffer()
        header = _HEADER.pack(len(table) + len(payload), len(fds), len(table) // _TABLE_ENTRY.size)
        try:
            self._send(header, table, payload, fds)
        except OSError as exc:
            raise ChannelClosed(str(exc)) from None
        finally:
            if segment is not None and segment is not self._out:
                segment.close()  # single use: the descriptor in flight keeps it alive for the receiver

    def _place(self, large: list[memoryview]) -> tuple[_Segment, list[int], bytes]:
        """Copy the large buffers into this side's segment (a new one if it is too small)."""
        offsets = []
        size = 0
        for view in large:
            offsets.append(size)
            size += (view.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        fds = []
        segment = self._out
        if segment is None or segment.size < size:
            if segment is not None:
                segment.close()
            segment = self._out = _Segment(_capacity(size))
            fds.append(segment.fd)  # the other side maps it once
        for offset, view in zip(offsets, large, strict=True):
            segment.map[offset : offset + view.nbytes] = view
        if segment.size > RETAIN_MAX:
            self._out = None
        table = b"".join(_TABLE_ENTRY.pack(offset, view.nbytes) for offset, view in zip(offsets, large, strict=True))
        return segment, fds, table

    def _send(self, header: bytes, table: bytes, payload: memoryview, fds: list[int]) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        while True:
            try:
                sent = self.sock.sendmsg([header, table, payload], ancillary)
                break
            except (BlockingIOError, InterruptedError):
                self._wait(self._poll_out)
        head = len(header) + len(table)
        rest = memoryview((header + table)[sent:] + payload.tobytes()) if sent < head else payload[sent - head :]
        while rest:
            try:
                rest = rest[self.sock.send(rest) :]
            except (BlockingIOError, InterruptedError):
                self._wait(self._poll_out)

    # --- receiving -------------------------------------------------------------------------------

    def recv(self) -> tuple:
        """The next message; its large array buffers are copied out of the other side's segment."""
        header, fds = self._recv_header()
        length, _, count = _HEADER.unpack(header)
        try:
            payload = self._recv_exact(length)
            if fds:
                if self._in is not None:
                    self._in.close()
                    self._in = None
                fd = fds.pop()
                self._in = _Segment(os.fstat(fd).st_size, fd)
        finally:
            for fd in fds:
                os.close(fd)
        view = memoryview(payload)
        buffers = []
        if count:
            if self._in is None:
                raise ChannelClosed("a message refers to a shared segment that never came")
            for index in range(count):
                offset, size = _TABLE_ENTRY.unpack_from(view, index * _TABLE_ENTRY.size)
                owned = np.empty(size, np.uint8)
                owned[:] = np.frombuffer(self._in.map, np.uint8, size, offset)
                buffers.append(owned)
            if self._in.size > RETAIN_MAX:
                self._in.close()
                self._in = None
        unpickler = pickle.Unpickler(io.BytesIO(view[count * _TABLE_ENTRY.size :]), buffers=buffers)
        kind = unpickler.load()
        try:
            return (kind, *unpickler.load())
        except Exception as exc:
            raise UnreadableMessage(kind, f"{type(exc).__name__}: {exc}") from exc

    def _recv_header(self) -> tuple[bytes, list[int]]:
        got = b""
        fds: list[int] = []
        while len(got) < _HEADER.size:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(_HEADER.size - len(got), _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                self._wait(self._poll_in)
                continue
            except OSError as exc:
                raise ChannelClosed(str(exc)) from None
            for level, kind, data_fds in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    ints = array.array("i")
                    ints.frombytes(data_fds[: len(data_fds) - len(data_fds) % ints.itemsize])
                    fds.extend(ints)
            if not data:
                for fd in fds:
                    os.close(fd)
                raise ChannelClosed("end of stream")
            got += data
        return got, fds

    def _recv_exact(self, length: int) -> bytearray:
        payload = bytearray(length)
        view = memoryview(payload)
        while view:
            try:
                count = self.sock.recv_into(view)
            except (BlockingIOError, InterruptedError):
                self._wait(self._poll_in)
                continue
            except OSError as exc:
                raise ChannelClosed(str(exc)) from None
            if count == 0:
                raise ChannelClosed("end of stream")
            view = view[count:]
        return payload

    def _wait(self, poller: Any) -> None:
        if poller is None:  # a blocking socket: the call itself waits
            return
        while not poller.poll(_POLL_MS):
            if self.alive is not None and not self.alive():
                raise ChannelClosed("the process exited")
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise ChannelClosed("no answer in time")


# --- pickling ----------------------------------------------------------------------------------------


def _in_band(buffer: pickle.PickleBuffer, large: list[memoryview]) -> bool:
    """Pickle's buffer callback (numpy arrays hand their data over as a PickleBuffer)."""
    view = buffer.raw()
    if view.nbytes < SHM_THRESHOLD:
        return True
    large.append(view)
    return False


def _triton_error(kind: str, message: str) -> TritonError:
    return TritonError(ErrorKind(kind), message)


def _reduce_triton_error(error: TritonError) -> tuple:
    return _triton_error, (error.kind.value, error.message)


# TritonError's constructor takes (kind, message), not the exception's args
_DISPATCH = {**copyreg.dispatch_table, TritonError: _reduce_triton_error}


def _capacity(size: int) -> int:
    return max(_MIN_SEGMENT, 1 << (size - 1).bit_length())


def anonymous_file(size: int, name: str = "tritonlite-tensors") -> int:
    """A file of ``size`` bytes that only its descriptors name (``name`` labels it in /proc)."""
    fd = -1
    if hasattr(os, "memfd_create"):
        try:
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
        except OSError:
            fd = -1
    if fd < 0:
        folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix="tritonlite-", dir=folder)
        os.unlink(path)  # only the descriptor names it from now on
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return fd
