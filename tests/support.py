"""Scaffolding shared by the tests: the checkout, the commands (in-process and as processes),
the pending list, and running asyncio steps on a Redis client. Crawls are in ``crawling.py``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hotelimages import cli
from hotelimages.keys import Keys
from hotelimages.redisconn import async_client

#: The checkout; pyproject's ``pythonpath`` puts it on the import path (benchmarks/, devtools/ are not installed).
ROOT = Path(__file__).resolve().parent.parent
KEYS = Keys()


@dataclass
class Ran:
    """What a command did: its exit code and what it printed."""

    code: int
    out: str
    err: str


def run_cli(capsys, *argv: str | Path) -> Ran:
    """``hotelimages ARGV`` in this process (``cli.main``), with what it printed (pytest's ``capsys``)."""
    capsys.readouterr()  # drop what came before
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def run_script(name: str, *args: str | Path, env: dict[str, str] | None = None, stdin: str = "",
               cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    """``scripts/NAME ARGS`` as a process, as an operator runs it from a venv that has the checkout installed.

    The test venv does not install the checkout: PYTHONPATH stands in for ``pip install -e .``.
    """
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], input=stdin,
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)


def pending(client, keys: Keys = KEYS) -> list[bytes]:
    """The pending list in the order nodes take it (they pop from the right)."""
    return list(reversed(client.lrange(keys.start_ids, 0, -1)))


def pending_ids(client, keys: Keys = KEYS) -> list[str]:
    """:func:`pending`, decoded."""
    return [x.decode() for x in pending(client, keys)]


def run_with_client(redis_url: str, steps):
    """Run ``await steps(client)`` on a fresh asyncio Redis client, closed afterwards; returns its result."""

    async def main():
        client = async_client(redis_url)
        try:
            return await steps(client)
        finally:
            await client.aclose()

    return asyncio.run(main())
