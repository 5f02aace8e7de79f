"""streams/reports/fetcher.py: a report day read while its file downloads (`GrowingFile`).

The fetcher hands a day over as soon as its header is verified; the stream reads the spooled
gzip file as it grows. A read waits for more bytes until the download is whole, and a download
that breaks off raises `DownloadBrokenError` in the reader (the stream then drops what it read,
and a new delivery of the day follows).
"""

from __future__ import annotations

import gzip
import threading
import time
from datetime import date
from typing import TYPE_CHECKING

import pytest

from tap_microsoft365.streams.reports.fetcher import Delivery, DownloadBrokenError, GrowingFile

if TYPE_CHECKING:
    from pathlib import Path

DAY = date(2026, 11, 24)
ROWS = [f"2026-11-24,user{n}@contoso.com,{n}\r\n".encode() for n in range(20_000)]


def spool(path: Path, delivery: Delivery, rows: list[bytes], *, break_after: int | None) -> None:
    """Write the rows as the fetcher does (gzip, in chunks, with pauses), then finish."""
    with gzip.open(path, "wb", compresslevel=1) as file:
        for start in range(0, len(rows), 1000):
            if break_after is not None and start >= break_after:
                delivery.finish(broken=True)
                return
            file.write(b"".join(rows[start : start + 1000]))
            file.flush()
            time.sleep(0.002)
    delivery.finish(broken=False)


def test_a_growing_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "day.csv.gz"
    path.write_bytes(b"")
    delivery = Delivery(DAY, path, complete=False)
    writer = threading.Thread(
        target=spool, args=(path, delivery, ROWS), kwargs={"break_after": None}
    )
    writer.start()
    with gzip.open(GrowingFile(delivery), "rb") as text:
        read = text.read()
    writer.join()
    assert read == b"".join(ROWS)
    assert delivery.complete
    assert not delivery.broken
    delivery.wait()  # whole: returns


def test_a_download_that_breaks_off_stops_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "day.csv.gz"
    path.write_bytes(b"")
    delivery = Delivery(DAY, path, complete=False)
    writer = threading.Thread(
        target=spool, args=(path, delivery, ROWS), kwargs={"break_after": 5000}
    )
    writer.start()
    read: list[bytes] = []

    def read_lines() -> None:
        with gzip.open(GrowingFile(delivery), "rb") as text:
            read.extend(text)

    with pytest.raises(DownloadBrokenError):
        read_lines()
    writer.join()
    lines = len(read)
    assert lines < len(ROWS)  # it never reached the end of a file that has none
    assert delivery.broken
    assert not delivery.complete
    with pytest.raises(DownloadBrokenError):
        delivery.wait()


def test_a_delivery_is_whole_unless_handed_over_while_downloading(tmp_path: Path) -> None:
    assert Delivery(DAY, tmp_path / "x.csv.gz").complete
    assert Delivery(DAY, None).complete
