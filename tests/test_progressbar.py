"""The progress display of pack and merge: tqdm, decimal units like ``status``, ETAs past 24 hours."""

from __future__ import annotations

import io

from hotelimages import status
from hotelimages.progressbar import ProgressBar, format_bytes


def test_units_are_the_ones_status_uses():
    assert format_bytes is status.format_bytes
    assert format_bytes(412_300_000_000) == "412.3 GB"


def test_eta_beyond_a_day_is_not_wrapped(monkeypatch):
    out = io.StringIO()
    bar = ProgressBar("merge", stream=out)
    bar._bar.start_t -= 3600  # an hour in, 1% done: about 99 hours to go
    bar(10_000_000, 1_000_000_000)
    bar._bar.refresh()
    text = out.getvalue()
    assert "merge" in text and "10.0M/1.00G" in text
    eta = text.rsplit("<", 1)[1].split(",")[0]
    hours = int(eta.split(":")[0])
    assert 95 <= hours <= 100, text
    bar.close()
