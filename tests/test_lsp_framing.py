"""lsp_server/protocol/framing.py: the reader finds the frame after a bad one and never allocates a claimed
length."""

import io

from lsp_server.protocol.framing import MAX_FRAME, Resync


def lines(data: bytes) -> list[bytes]:
    r, out = Resync(io.BytesIO(data)), []
    while line := r.readline():
        out.append(line)
    return out


def test_a_header_after_the_rest_of_a_body_is_found():
    # a frame whose Content-Length was too short leaves its tail on the next frame's header line
    assert lines(b'1, "x": 2}Content-Length: 12\r\n\r\n') == [b"Content-Length: 12\r\n", b"\r\n"]


def test_header_names_in_any_case_and_bare_newlines_are_read():
    assert lines(b"content-length:7\n") == [b"Content-Length: 7\r\n"]
    assert lines(b"Content-Type: x\r\n") == [b"Content-Type: x\r\n"]


def test_a_length_too_long_to_read_is_refused_without_allocating_it():
    claimed = lines(b"Content-Length: " + b"9" * 5000 + b"\r\n")
    assert claimed == [b"Content-Length: %d\r\n" % (MAX_FRAME + 1)]
    r = Resync(io.BytesIO(b"{}"))
    assert r.read(MAX_FRAME + 1) == b"\x00"  # not JSON: answered as a parse error
    assert r.read(2) == b"{}"  # the stream was left where it was


def test_a_body_is_read_whole_across_chunks():
    body = b"x" * (3 * 2**20 + 5)
    assert Resync(io.BytesIO(body + b"tail")).read(len(body)) == body
