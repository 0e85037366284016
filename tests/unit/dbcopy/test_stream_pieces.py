"""Pure logic of the parallel copy: page ranges of a split table, and the row hashes taken off a COPY stream."""

from __future__ import annotations

import io

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.stream import (
    BINARY_SIGNATURE,
    RowHashes,
    page_ranges,
)

HEADER = BINARY_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"


@pytest.mark.parametrize(
    ("pages", "pieces", "expected"),
    [
        (100, 4, [(None, 25), (25, 50), (50, 75), (75, None)]),
        (10, 3, [(None, 3), (3, 6), (6, None)]),
        (3, 8, [(None, 1), (1, 2), (2, None)]),  # never more pieces than pages
        (1, 4, [(None, None)]),
        (0, 4, [(None, None)]),  # an empty table is still read once (the last range is open)
    ],
)
def test_page_ranges_cover_the_table_and_leave_both_ends_open(pages, pieces, expected):
    assert page_ranges(pages, pieces) == expected


def _field(value: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if value is None else len(value).to_bytes(4, "big") + value


def _binary_row(*values: bytes | None) -> bytes:
    return len(values).to_bytes(2, "big") + b"".join(_field(v) for v in values)


def _hash(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def test_binary_rows_lose_their_last_column_and_its_hashes_add_up():
    sink = io.BytesIO()
    hashes = RowHashes(binary=True)
    hashes.sink = sink
    messages = [
        HEADER + _binary_row(b"a", None, _hash(5)),
        _binary_row(b"bb", b"\x00\x01", _hash(-7)),
        _binary_row(b"", b"x", _hash(2**63 - 1)),
        TRAILER,
    ]
    for message in messages:
        assert hashes.write(message) == len(message)
    expected = HEADER + _binary_row(b"a", None) + _binary_row(b"bb", b"\x00\x01") + _binary_row(b"", b"x") + TRAILER
    assert sink.getvalue() == expected
    assert (hashes.rows, hashes.total) == (3, 5 - 7 + 2**63 - 1)


def test_an_empty_binary_stream_passes_unchanged():
    sink = io.BytesIO()
    hashes = RowHashes(binary=True)
    hashes.sink = sink
    hashes.write(HEADER + TRAILER)
    assert sink.getvalue() == HEADER + TRAILER
    assert (hashes.rows, hashes.total) == (0, 0)


def test_a_binary_row_without_its_hash_is_refused():
    hashes = RowHashes(binary=True)
    hashes.sink = io.BytesIO()
    with pytest.raises(ValueError, match="hash"):
        hashes.write(HEADER + _binary_row(b"abcd"))


@pytest.mark.parametrize(
    ("line", "row", "value"),
    [
        (b"1\tone\t-42\n", b"1\tone\n", -42),
        (b"\\N\t\\t tab\t9223372036854775807\n", b"\\N\t\\t tab\n", 2**63 - 1),
        (b"x" * 100 + b"\t-9223372036854775808\n", b"x" * 100 + b"\n", -(2**63)),
        (b"17\n", b"\n", 17),  # a table without copied columns: only the hash
    ],
)
def test_text_rows_lose_their_last_column(line, row, value):
    sink = io.BytesIO()
    hashes = RowHashes(binary=False)
    hashes.sink = sink
    hashes.write(line)
    assert sink.getvalue() == row
    assert (hashes.rows, hashes.total) == (1, value)
