"""Failure reasons: the short codes recorded for an image or a hotel that could not be done.

Every code that the spider and the pipelines derive from an exception, a Twisted failure or
an HTTP response is made here, so one download error reads the same wherever it happened:
``timeout``, ``connection_refused``, ``dns_error``, ``data_loss``, ``disallowed_scheme``,
``connection_error``, ``too_large``, ``decompression_bomb``, ``redirect_loop``, ``cancelled``,
``ignored``, ``tls_error``, ``proxy_error``, ``http_<status>``, ``error_<exception>``; a
listing's are the same with a ``listing_`` prefix. Checks that refuse content (``imagecheck``,
``listing``) raise their own reason codes, which pass through unchanged.

Some reasons say nothing about the hotel but something about this node or its surroundings
(``NODE_LOCAL_REASONS``: no listing URL configured, a listing host that refuses connections or
does not resolve, a failing TLS handshake or proxy). A hotel that fails that way is given back
to the queue unfailed, and the node's circuit breaker (``breaker``) counts it.
"""

from __future__ import annotations

from typing import Any

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
    UnsupportedURLSchemeError,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as twisted_error

from hotelimages.listing import refused_redirect

#: A bug in our code (a component raised): recorded rather than stranding the claimed hotel.
INTERNAL_ERROR = "internal_error"
#: A reason whose origin was lost (a result without a failure value).
UNKNOWN = "unknown"
#: Prefix of the reasons of a hotel whose listing could not be fetched.
LISTING_PREFIX = "listing_"
#: A hotel entry without inline images while HOTEL_LISTING_URL is not set.
NO_LISTING_URL = "no_listing_url"
#: A listing whose ``next`` points to a page already fetched for the hotel.
LISTING_NEXT_LOOP = "listing_next_loop"

#: Reasons about this node or its environment, not the hotel, with the words an operator reads.
NODE_LOCAL_REASONS: dict[str, str] = {
    NO_LISTING_URL: "no listing URL configured (HOTEL_LISTING_URL is not set)",
    "listing_connection_refused": "listing host refuses connections",
    "listing_dns_error": "listing host name does not resolve",
    "listing_connection_error": "connections to the listing host fail (reset or lost)",
    "listing_tls_error": "TLS handshake with the listing host fails",
    "listing_proxy_error": "the proxy fails listing requests",
    "listing_http_407": "the proxy asks for authentication (HTTP 407)",
}

_EXCEPTION_REASONS: list[tuple[tuple[type[BaseException], ...], str]] = [
    ((DownloadTimeoutError, twisted_error.TimeoutError, TimeoutError), "timeout"),
    (
        (DownloadConnectionRefusedError, twisted_error.ConnectionRefusedError, ConnectionRefusedError),
        "connection_refused",
    ),
    ((CannotResolveHostError, twisted_error.DNSLookupError), "dns_error"),
    ((ResponseDataLossError,), "data_loss"),
    ((UnsupportedURLSchemeError,), "disallowed_scheme"),
    ((DownloadFailedError, twisted_error.ConnectionLost, twisted_error.ConnectError), "connection_error"),
]


def download_reason(exc: BaseException) -> str:
    """A short reason code for an exception raised while downloading (an image or a listing)."""
    if isinstance(exc, DownloadCancelledError):
        return "too_large" if "max" in str(exc).lower() else "cancelled"
    if isinstance(exc, IgnoreRequest):
        text = str(exc)
        if "during decompression" in text:
            return "decompression_bomb"
        if "DOWNLOAD_MAXSIZE" in text or "max size" in text:
            return "too_large"
        return "redirect_loop" if "redirect" in text.lower() else "ignored"
    if _is_tls_failure(exc):
        return "tls_error"
    if type(exc).__name__ == "TunnelError":  # scrapy's http11 handler: the proxy refused the CONNECT
        return "proxy_error"
    for classes, reason in _EXCEPTION_REASONS:
        if isinstance(exc, classes):
            return reason
    name = type(exc).__name__
    if "ResponseNeverReceived" in name or "ConnectionLost" in name:
        return "connection_error"
    if "Decompression" in name or "decompress" in str(exc).lower():
        return "decompression_bomb"
    return f"error_{name.lower()}"


def _is_tls_failure(exc: BaseException) -> bool:
    """True if ``exc`` (or a failure it wraps, as Twisted's ResponseNeverReceived does) is a TLS error."""
    seen: list[BaseException] = [exc]
    seen += [getattr(f, "value", f) for f in getattr(exc, "reasons", None) or ()]
    if exc.__cause__ is not None:
        seen.append(exc.__cause__)
    for err in seen:
        kind = type(err)
        if "SSL" in kind.__name__ or kind.__module__.startswith(("OpenSSL", "ssl")):
            return True
        text = str(err)
        if "SSL" in text or "CERTIFICATE_VERIFY_FAILED" in text or "tlsv1" in text.lower():
            return True
    return False


def response_reason(response: Any) -> str:
    """The reason code of a response that is not a 200: ``disallowed_scheme`` or ``http_<status>``."""
    return "disallowed_scheme" if refused_redirect(response) else f"http_{response.status}"


def result_reason(value: Any) -> str:
    """The reason of a media result that is not a stored file: from its failure, else ``unknown``."""
    exc = getattr(value, "value", None)
    return download_reason(exc) if isinstance(exc, BaseException) else UNKNOWN


def listing_reason(exc: BaseException) -> str:
    """The reason code of a hotel whose listing request failed with ``exc``."""
    if isinstance(exc, HttpError):
        return LISTING_PREFIX + response_reason(exc.response)
    return LISTING_PREFIX + download_reason(exc)


def node_local_text(reason: str | None) -> str | None:
    """The operator's words for a reason about this node (see ``NODE_LOCAL_REASONS``), else None."""
    return NODE_LOCAL_REASONS.get(reason or "")


def hotel_status(reason: str) -> str:
    """The status a hotel that failed as a whole is counted under: ``rejected`` (bad input) or ``failed``."""
    return "rejected" if reason.startswith("invalid_") else "failed"
