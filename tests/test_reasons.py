"""Failure reasons: exceptions, failures and responses to the codes recorded in manifests."""

from __future__ import annotations

from scrapy.exceptions import DownloadTimeoutError, IgnoreRequest
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as twisted_error
from twisted.python.failure import Failure

from hotelimages import reasons


def response(status: int, location: str | None = None) -> Response:
    headers = {"Location": location} if location else {}
    return Response("http://img.example.com/a.jpg", status=status, headers=headers,
                    request=Request("http://img.example.com/a.jpg"))


def test_download_reasons_of_common_errors():
    assert reasons.download_reason(DownloadTimeoutError("took 30 s")) == "timeout"
    assert reasons.download_reason(twisted_error.DNSLookupError()) == "dns_error"
    assert reasons.download_reason(IgnoreRequest("max redirections reached")) == "redirect_loop"
    assert reasons.download_reason(KeyError("x")) == "error_keyerror"


def test_response_reasons():
    assert reasons.response_reason(response(404)) == "http_404"
    assert reasons.response_reason(response(302, "file:///etc/passwd")) == "disallowed_scheme"
    assert reasons.response_reason(response(302, "http://img.example.com/b.jpg")) == "http_302"


def test_listing_reasons_carry_the_prefix():
    assert reasons.listing_reason(HttpError(response(503), "ignored")) == "listing_http_503"
    assert reasons.listing_reason(HttpError(response(301, "ftp://x/y"), "ignored")) == "listing_disallowed_scheme"
    assert reasons.listing_reason(twisted_error.ConnectionRefusedError()) == "listing_connection_refused"


def test_result_reason_reads_a_failure_or_says_unknown():
    assert reasons.result_reason(Failure(DownloadTimeoutError("t"))) == "timeout"
    assert reasons.result_reason({"status": "failed"}) == "unknown"


def test_hotel_status_of_a_reason():
    assert reasons.hotel_status("invalid_hotel_id") == "rejected"
    assert reasons.hotel_status("listing_http_404") == "failed"
