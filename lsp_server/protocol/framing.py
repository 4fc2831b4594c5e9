"""stdin for pygls' read loop, made to survive bad frames.

pygls reads a header line at a time and takes only a line that is exactly `Content-Length: N\\r\\n`. After a
frame whose Content-Length was wrong, the rest of a body (JSON has no newline at its end) and the next
frame's header arrive as one line, which never matches again: the server stopped hearing the client for
good. And a huge Content-Length made it allocate that many bytes at once (MemoryError ends the loop). Here:

- a header line that ends in a Content-Length header after other bytes is cut to that header, so the frame
  after a bad one is read again; the header's name is matched in any case and `\\n` alone ends it too;
- a body longer than MAX_FRAME (or a length of too many digits for int()) is refused: one byte is handed
  over instead (answered as a parse error) and the reader looks for the next header;
- a body is read in pieces of at most CHUNK bytes, so memory follows the bytes that really came.
"""

from __future__ import annotations

import re
from typing import BinaryIO

HEADER = re.compile(rb"content-length:[ \t]*(\d+)[ \t]*\r?\n\Z", re.IGNORECASE)
MAX_FRAME = 1 << 28  # 256 MiB: far above the largest document the server keeps (documents.MAX_BYTES)
CHUNK = 1 << 20


class Resync:
    """The readline() and read(n) of a binary stream, for pygls' StdinAsyncReader."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream

    def readline(self) -> bytes:
        line = self.stream.readline()
        if (m := HEADER.search(line)) is None:
            return line
        digits = m.group(1).lstrip(b"0") or b"0"  # int() refuses more than 4,300 digits
        return b"Content-Length: %d\r\n" % (int(digits) if len(digits) <= 12 else MAX_FRAME + 1)

    def read(self, n: int) -> bytes:
        if n > MAX_FRAME:
            return b"\x00"  # not JSON: pygls answers a parse error, then reads headers again
        parts, left = [], n
        while left > 0 and (part := self.stream.read(min(left, CHUNK))):
            parts.append(part)
            left -= len(part)
        return b"".join(parts)
