"""The ``hotelimages`` command: one subcommand per operator task (``hotelimages --help`` lists them).

    hotelimages node --env-file node.env        # run a node (also installed as ``hotelimages-node``)
    hotelimages push ids.txt                    # queue hotels
    hotelimages status --watch                  # watch the fleet

Each subcommand is a module of :mod:`hotelimages.commands`. Options that several subcommands take
are defined once (:data:`hotelimages.commands.SHARED`) and given to a subcommand by its ``OPTIONS``. Exit codes:
0 ok, 1 partial (some hosts, shards or hotels failed), 2 error (including a bad command line).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from hotelimages.commands import COMMANDS, SHARED, UsageError

PROG = "hotelimages"


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name`` (``retry-failed`` -> ``hotelimages.commands.retry_failed``)."""
    return importlib.import_module(f"hotelimages.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand with its own and its shared options."""
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        description="Distributed downloader of hotel photos: run nodes, queue hotels, watch, pack and merge.",
        epilog="`hotelimages COMMAND --help` explains each command. Exit codes: 0 ok, 1 partial, 2 error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        summary, _, details = (module.__doc__ or "").strip().partition("\n")
        p = sub.add_parser(
            name, help=summary.rstrip("."), description=f"{summary}\n{details}",
            parents=[SHARED[o]() for o in module.OPTIONS], allow_abbrev=False,
            add_help=getattr(module, "OWN_HELP", True), formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module, _parser=p)
    return parser


def dispatch(argv: list[str]) -> int:
    """Parse ``argv`` and run its subcommand; argparse's exits are left to the caller."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    module = args._module
    if rest and not getattr(module, "PASSTHROUGH", False):
        args._parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return module.run(args)
    except UsageError as exc:
        args._parser.error(str(exc))
    except KeyboardInterrupt:
        return 130
    return 2  # not reached: error() exits


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hotelimages``: the exit code of the subcommand (0 ok, 1 partial, 2 error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            code = dispatch(argv)
        except SystemExit as exc:  # argparse's --help (0) and usage errors (2), or a tool's own exit
            code = exc.code
            if isinstance(code, str):
                print(code, file=sys.stderr)
                code = 1
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # The reader (``| head``) went away: end quietly. Python's docs recommend pointing stdout at
        # devnull so that the interpreter's final flush does not fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file descriptor (tests capturing it)
            pass
        return 1
    return 0 if code is None else int(code)


def node_main(argv: list[str] | None = None) -> int:
    """Entry point of ``hotelimages-node``: the same as ``hotelimages node``."""
    return main(["node", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
