"""Env files (``NAME=VALUE`` lines) for a node: decoded as ``textfiles`` says, parsed by python-dotenv.

python-dotenv's parser handles comments, ``export``, quotes and escapes; its loaders skip a line
they cannot parse with a warning that shows the line, so this module takes the parser's
bindings and turns a bad line into an error that names the file and the line only (a value may
be a password). Values are taken literally: no ``${VAR}`` interpolation.
"""

from __future__ import annotations

import io
from collections.abc import MutableMapping
from pathlib import Path

from dotenv.parser import parse_stream

from hotelimages.textfiles import TextFileError, read_text


class EnvFileError(TextFileError):
    """An env file line that is not ``NAME=VALUE``; names the file and the line, never its text."""


def parse_env_text(text: str, source: str = "env file") -> dict[str, str]:
    """``NAME=VALUE`` lines (``#`` comments, blank lines, ``export``, quotes) as a dict, in order."""
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        # A binding's text starts with the blank lines before it; its line is the first line after them.
        chunk = binding.original.string
        line = binding.original.line + chunk[: len(chunk) - len(chunk.lstrip())].count("\n")
        if binding.error:
            raise EnvFileError(f"{source}:{line}: expected NAME=VALUE")
        if binding.key is None:  # a comment or a blank line
            continue
        if binding.value is None:
            raise EnvFileError(f"{source}:{line}: expected NAME=VALUE (no '=')")
        if not binding.key.isidentifier() or not binding.key.isascii():
            raise EnvFileError(f"{source}:{line}: expected NAME=VALUE with a name of letters, digits and _")
        values[binding.key] = binding.value
    return values


def read_env_file(path: str | Path) -> dict[str, str]:
    """The variables of one env file; raises OSError, or TextFileError naming the file and line."""
    return parse_env_text(read_text(path), str(path))


def load_env_files(paths: list[Path], environ: MutableMapping[str, str]) -> dict[str, str]:
    """Put the files' variables into ``environ``; a variable already set there is kept (it wins).

    Returns every variable the files set (later files win over earlier ones).
    """
    loaded: dict[str, str] = {}
    for path in paths:
        loaded.update(read_env_file(path))
    for name, value in loaded.items():
        environ.setdefault(name, value)
    return loaded
