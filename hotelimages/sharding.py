"""Hash-sharded store paths, and the ID rules that keep every path inside the store.

A hotel lives at ``<h0>/<h1>/.../<h{depth-1}>/<hotel_id>`` where ``h`` is the hex
sha1 of the hotel ID. Everything here is pure: no I/O, no settings.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

DEFAULT_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
#: Any one path part that is safe on POSIX and Windows once validate_id's refusals are added (``..``,
#: separators, drive colons, device names, trailing dots): what pack and merge accept from manifests and shards.
ANY_PART_PATTERN = r"[^/]{1,255}"
MAX_DEPTH = 40  # a sha1 hex digest has 40 digits

# Names Windows refuses as file or folder names, whatever the extension (4 characters at most).
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(10)]
    + [f"LPT{i}" for i in range(10)]
)
# Path separators, characters Windows forbids in names, and control characters.
_UNSAFE = re.compile(r'[/\\:*?"<>|\x00-\x1f]')
# IDs made of these only (the usual case) cannot be unsafe but for a Windows device name.
_PLAIN = re.compile(r"[A-Za-z0-9_-]+")
_RESERVED_MAX_LEN = 4


@functools.lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class InvalidId(ValueError):
    """An ID that must not become part of a path; ``reason`` is a short code for records."""

    def __init__(self, kind: str, value: object, why: str):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid {kind} id {shown}: {why}")
        self.kind = kind
        self.reason = f"invalid_{kind}_id"


def validate_id(value: object, pattern: str = DEFAULT_ID_PATTERN, kind: str = "hotel") -> str:
    """Return ``value`` if it is a safe ID matching ``pattern``, else raise InvalidId.

    The pattern is configurable, but names that are dangerous as path parts
    (``..``, separators, Windows device names, trailing dots) are refused whatever it allows.
    """
    if not isinstance(value, str):
        raise InvalidId(kind, value, f"expected a string, got {type(value).__name__}")
    if not _compiled(pattern).fullmatch(value):
        raise InvalidId(kind, value, f"does not match {pattern}")
    if _PLAIN.fullmatch(value):  # fast path (bulk loads check 600,000 IDs): no dots, no separators
        if len(value) <= _RESERVED_MAX_LEN and value.upper() in _WINDOWS_RESERVED:
            raise InvalidId(kind, value, "reserved device name on Windows")
        return value
    if value in ("", ".", "..") or _UNSAFE.search(value):
        raise InvalidId(kind, value, "contains a path separator, a control character or is a relative path")
    if value[-1] in ". ":
        raise InvalidId(kind, value, "trailing dot or space")
    if value.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        raise InvalidId(kind, value, "reserved device name on Windows")
    return value


def validate_path_part(value: object, kind: str = "path part") -> str:
    """Return ``value`` if it is safe as one folder or file name in a store, whatever ID pattern a node used."""
    return validate_id(value, ANY_PART_PATTERN, kind)


def shard_parts(hotel_id: str, depth: int = 4) -> list[str]:
    """The shard folder names of a hotel: the first ``depth`` hex digits of sha1(hotel_id)."""
    if not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"shard depth must be between 0 and {MAX_DEPTH}, got {depth}")
    return list(hashlib.sha1(hotel_id.encode("utf-8")).hexdigest()[:depth])


def hotel_dir(hotel_id: str, depth: int = 4, pattern: str = DEFAULT_ID_PATTERN) -> str:
    """A hotel's folder relative to the store, as a POSIX path, e.g. ``2/8/e/0/7892470``."""
    validate_id(hotel_id, pattern, "hotel")
    return "/".join([*shard_parts(hotel_id, depth), hotel_id])  # a checked ID: no separators, no dot names


def image_relpath(
    hotel_id: str,
    category: str,
    image_id: str,
    ext: str,
    depth: int = 4,
    pattern: str = DEFAULT_ID_PATTERN,
    hotel_pattern: str | None = None,
) -> str:
    """An image's path relative to the store: ``<shards>/<hotel_id>/<category>/<image_id>.<ext>``.

    ``pattern`` checks the image ID; ``hotel_pattern`` the hotel ID (default: the same).
    """
    validate_id(category, DEFAULT_ID_PATTERN, "category")
    validate_id(image_id, pattern, "image")
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise ValueError(f"invalid file extension {ext!r}")
    return f"{hotel_dir(hotel_id, depth, hotel_pattern or pattern)}/{category}/{image_id}.{ext}"


def derive_image_id(url: str) -> str:
    """A stable image ID for a listing entry without one: 16 hex digits of sha1(url)."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


def resolve_in_store(store: str | Path, relpath: str) -> Path:
    """The absolute path of ``relpath`` under ``store``; raises ValueError if it would leave it."""
    root = Path(store).resolve()
    target = (root / relpath).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"path {relpath!r} leaves the store {str(root)!r}")
    return target
