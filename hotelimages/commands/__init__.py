"""The subcommands of ``hotelimages``: one module each, with ``add_arguments(parser)`` and ``run(args) -> int``.

A module's docstring is its help: the first line is the one-line summary ``hotelimages --help``
lists, the rest is the description of ``hotelimages COMMAND --help``. ``OPTIONS`` names the shared
option groups (:data:`SHARED`) the command takes, so that ``--redis-url``, ``--key``,
``--prefix``, ``--store`` and ``--json`` are defined once. ``run`` returns the exit code: 0 ok,
1 partial, 2 error; a :class:`UsageError` becomes argparse's usage message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotelimages import defaults

#: Subcommand name -> module under ``hotelimages.commands``, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "node": "node",
    "doctor": "doctor",
    "push": "push",
    "status": "status",
    "requeue": "requeue",
    "retry-failed": "retry_failed",
    "pause": "pause",
    "resume": "resume",
    "convert-done": "convert_done",
    "pack": "pack",
    "merge": "merge",
    "catalog": "catalog",
    "schedule": "schedule",
    "bench": "bench",
    "demo": "demo",
}


def _redis_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("Redis")
    group.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or defaults.REDIS_URL,
                       help="the queue's Redis (default: $REDIS_URL, else %(default)s)")
    group.add_argument("--key", default=os.environ.get("HOTELS_REDIS_KEY") or defaults.HOTELS_REDIS_KEY,
                       help="the pending list (default: $HOTELS_REDIS_KEY, else %(default)s)")
    group.add_argument("--prefix", default=os.environ.get("HOTELS_KEY_PREFIX") or defaults.HOTELS_KEY_PREFIX,
                       help="prefix of the other Redis keys (default: $HOTELS_KEY_PREFIX, else %(default)s)")
    return parser


def _store_option() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store", type=Path, default=None,
                        help="the image store: a node's IMAGES_STORE, or the central store (default: $IMAGES_STORE)")
    return parser


def _json_option() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for programs)")
    return parser


#: Shared option groups by name; a command module's ``OPTIONS`` picks from these. Built per parser,
#: so the environment fallbacks are read when the command line is parsed.
SHARED: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "redis": _redis_options,
    "store": _store_option,
    "json": _json_option,
}


class UsageError(Exception):
    """A command line that parsed but makes no sense (a missing store, two sources); exit code 2."""


def store_of(args: argparse.Namespace, *, required: bool = True) -> Path | None:
    """``--store``, else the IMAGES_STORE environment variable; a :class:`UsageError` if ``required`` and neither."""
    if args.store is not None:
        return args.store
    if os.environ.get("IMAGES_STORE"):
        return Path(os.environ["IMAGES_STORE"])
    if required:
        raise UsageError("the store is needed: give --store or set IMAGES_STORE")
    return None


def connect(args: argparse.Namespace) -> tuple[Any, Any]:
    """The blocking Redis client and the key names that ``--redis-url``, ``--key`` and ``--prefix`` give."""
    from hotelimages import defaults  # noqa: PLC0415 - only the Redis commands pay for redis-py
    from hotelimages.keys import Keys  # noqa: PLC0415
    from hotelimages.redisconn import sync_client  # noqa: PLC0415

    return sync_client(args.redis_url, defaults.REDIS_PARAMS), Keys(args.prefix, args.key)


def dev_tool(command: str, module: str, folder: str) -> Any:
    """``main`` of a checkout's dev tool (``benchmarks/``, ``devtools/``), or None after one line saying why not."""
    import importlib  # noqa: PLC0415
    import sys  # noqa: PLC0415

    try:
        return importlib.import_module(module).main
    except ModuleNotFoundError as exc:
        if exc.name not in (folder, module):
            raise
    print(f"hotelimages {command}: needs a checkout of hotelimages ({folder}/ is not in the installed package); "
          f"run it from the checkout's venv (bash scripts/dev.sh setup)", file=sys.stderr)
    return None
