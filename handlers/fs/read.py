"""Reading an opened file bounded by the bytes actually read, never by what ``stat`` promised:
``/dev/zero`` and ``/proc`` files say size 0 and never end or end later."""

from __future__ import annotations

import io
import os


class TooLarge(ValueError):
    """More than the limit was read."""


class Unlike(ValueError):
    """The file yielded more bytes than its size: a kernel interface (``/proc``, ``/sys``), not a file."""


class BoundedFile(io.RawIOBase):
    """A raw reader of ``fd`` (which it owns) that stops past ``limit`` bytes (None: no limit) and
    past the file's size: a file that grows while read is seen to grow, one that yields data its
    size does not account for is refused."""

    def __init__(self, fd: int, limit: int | None) -> None:
        super().__init__()
        self._fd = fd
        self.limit = limit
        self.size = os.fstat(fd).st_size
        self.total = 0
        if limit is not None and self.size > limit:
            self.close()
            raise TooLarge(self.size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        if self.limit is not None:
            want = min(want, self.limit + 1 - self.total)  # one byte more tells "too large" from "exactly"
        data = os.read(self._fd, want)
        n = len(data)
        buffer[:n] = data
        self.total += n
        if self.limit is not None and self.total > self.limit:
            raise TooLarge(self.total)
        if self.total > self.size:
            self.size = os.fstat(self._fd).st_size
            if self.total > self.size:
                raise Unlike(self.total)
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
