"""The ``hotelimages`` command line: subcommands, shared options, exit codes, and the dev-tool commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from support import ROOT, run_cli, run_script

from hotelimages import cli
from hotelimages.commands import COMMANDS

#: Commands whose --help is their tool's own (everything after the command name goes to it).
DEV_TOOLS = ("bench", "demo")


def test_help_lists_every_subcommand_with_one_line(capsys):
    result = run_cli(capsys, "--help")
    assert result.code == 0
    for name in COMMANDS:
        summary = cli.command_module(name).__doc__.split("\n", 1)[0].rstrip(".")
        assert re.search(rf"^    {name}\s+{re.escape(summary.split()[0])}", result.out, re.M), name
    assert list(COMMANDS) == ["node", "doctor", "push", "status", "requeue", "retry-failed", "pause", "resume",
                              "convert-done", "pack",
                              "merge", "catalog", "schedule", "bench", "demo"]


@pytest.mark.parametrize("name", [n for n in COMMANDS if n not in DEV_TOOLS])
def test_each_command_explains_itself(name, capsys):
    result = run_cli(capsys, name, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith(f"usage: hotelimages {name} ")
    summary = cli.command_module(name).__doc__.split("\n", 1)[0]
    assert summary in result.out
    assert f"\n    hotelimages {name} " in result.out  # an example


@pytest.mark.parametrize("name", ["push", "status", "requeue", "retry-failed", "pause", "resume"])
def test_redis_commands_share_one_definition_of_the_redis_options(name, capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://queue.invalid:6390/3")
    monkeypatch.setenv("HOTELS_REDIS_KEY", "mine:start_ids")
    monkeypatch.setenv("HOTELS_KEY_PREFIX", "mine")
    args = cli.build_parser().parse_args([name])
    assert (args.redis_url, args.key, args.prefix) == ("redis://queue.invalid:6390/3", "mine:start_ids", "mine")
    assert args.json is False
    help_text = run_cli(capsys, name, "--help").out
    for option, variable in (("--redis-url", "$REDIS_URL"), ("--key", "$HOTELS_REDIS_KEY"),
                             ("--prefix", "$HOTELS_KEY_PREFIX")):
        assert option in help_text and variable in help_text


def test_shared_options_are_defined_in_one_place_only():
    sources = {name: (ROOT / "hotelimages" / "commands" / f"{module}.py").read_text()
               for name, module in COMMANDS.items()}
    for option in ('"--redis-url"', '"--key"', '"--prefix"', '"--store"', '"--json"'):
        defined = [name for name, text in sources.items() if f"add_argument({option}" in text]
        assert defined == [], (option, defined)
    shared = (ROOT / "hotelimages" / "commands" / "__init__.py").read_text()
    for option in ('"--redis-url"', '"--key"', '"--prefix"', '"--store"', '"--json"'):
        assert shared.count(f"add_argument({option}") == 1, option


@pytest.mark.parametrize(("argv", "message"), [
    (["nope"], "invalid choice: 'nope'"),
    ([], "the following arguments are required: COMMAND"),
    (["push", "--bogus"], "unrecognized arguments: --bogus"),
    (["requeue", "--redis"], "unrecognized arguments: --redis"),  # no abbreviations
    (["status", "--window", "soon"], "invalid float value: 'soon'"),
])
def test_a_bad_command_line_is_exit_code_2(argv, message, capsys):
    result = run_cli(capsys, *argv)
    assert result.code == 2 and message in result.err, result.err


def test_node_passes_every_other_argument_to_scrapy_crawl():
    args, rest = cli.build_parser().parse_known_args(
        ["node", "-s", "NODE_ID=pc12", "--env-file", "node.env", "-s", "LOG_LEVEL=DEBUG", "-L", "INFO"])
    assert [str(p) for p in args.env_file] == ["node.env"]
    assert rest == ["-s", "NODE_ID=pc12", "-s", "LOG_LEVEL=DEBUG", "-L", "INFO"]


def test_node_with_a_bad_env_file_is_a_usage_error(tmp_path, capsys):
    env_file = tmp_path / "node.env"
    env_file.write_text("REDIS_URL redis://q\n")
    result = run_cli(capsys, "node", "--env-file", env_file)
    assert result.code == 2 and "node.env:1: expected NAME=VALUE" in result.err
    result = cli.node_main(["--env-file", str(tmp_path / "missing.env")])  # hotelimages-node is the same command
    assert result == 2 and "missing.env" in capsys.readouterr().err


def test_bench_and_demo_dispatch_to_the_checkouts_tools(capsys):
    result = run_cli(capsys, "bench", "--help")
    assert result.code == 0 and "--quick" in result.out and "img2dataset" in result.out
    result = run_cli(capsys, "demo", "--help")
    assert result.code == 0 and "--hotels" in result.out and "--workdir" in result.out


@pytest.mark.parametrize(("command", "folder"), [("bench", "benchmarks"), ("demo", "devtools")])
def test_bench_and_demo_without_a_checkout_say_so_in_one_line(command, folder, capsys, monkeypatch):
    # As in a venv with only the wheel: the folder does not import (even if an earlier test imported it).
    for name in [m for m in sys.modules if m == folder or m.startswith(folder + ".")] + [folder]:
        monkeypatch.setitem(sys.modules, name, None)
    result = run_cli(capsys, command, "--help")
    assert result.code == 2
    assert result.err.count("\n") == 1 and f"needs a checkout of hotelimages ({folder}/ is not" in result.err


def test_output_into_a_closed_pipe_ends_quietly():
    """``hotelimages ... | head``: the reader goes away first; no BrokenPipeError traceback.

    A command's output ends with exit code 1 (not all of it was read); argparse's help ignores the error itself.
    """
    hosts = [f"http://10.0.0.{n}:6800" for n in range(1, 250)]
    for argv, code in ((["--help"], 0), (["schedule", "--dry-run", *hosts], 1)):
        proc = subprocess.Popen([sys.executable, "-m", "hotelimages.cli", *argv], cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # before the command has printed anything
        started = time.monotonic()
        err = proc.stderr.read().decode()
        assert proc.wait(60) == code, err
        assert err == "", err
        assert time.monotonic() - started < 60


def test_demo_script_runs_as_a_process(tmp_path):
    out = run_script("demo", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--hotels" in out.stdout
