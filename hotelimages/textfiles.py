"""Decoding text files that operators write, on Windows too: env files, ID files, hosts files.

Accepted: UTF-8 with or without a byte-order mark, UTF-16 LE/BE and UTF-32 LE/BE with a BOM
(Notepad's "Unicode"), any of LF, CRLF or CR line ends. Anything else raises ``TextFileError``
naming the file and the line, never the line's text (it may hold a password).
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: Byte-order marks, longest first (a UTF-32 LE mark starts like a UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SAVE_AS = "save it as UTF-8 (or UTF-16 with a byte-order mark)"


class TextFileError(ValueError):
    """A file that is not text in an accepted encoding; the message names the file and the line."""


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec name, length of the byte-order mark) for a file starting with ``head``; UTF-8 without a mark."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return "utf-8", 0


def _line_of(text: str) -> int:
    return text.count("\n") + 1


def _check_nul(text: str, source: str, first_line: int = 1) -> None:
    at = text.find("\0")
    if at >= 0:
        line = first_line + _line_of(text[:at]) - 1
        raise TextFileError(f"{source}:{line}: NUL character: UTF-16 without a byte-order mark? {_SAVE_AS}")


def decode_text(data: bytes, source: str) -> str:
    """``data`` decoded as the module docstring says, with line ends made ``\\n``."""
    encoding, skip = sniff_encoding(data[:4])
    try:
        text = data[skip:].decode(encoding)
    except UnicodeDecodeError as exc:
        good = data[skip : skip + exc.start].decode(encoding, errors="replace")
        good = good.replace("\r\n", "\n").replace("\r", "\n")
        raise TextFileError(f"{source}:{_line_of(good)}: not valid {encoding.upper()} text; {_SAVE_AS}") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    _check_nul(text, source)
    return text


def read_text(path: str | Path) -> str:
    """The whole text of a small file (an env file, a hosts file); raises OSError or TextFileError."""
    path = Path(path)
    return decode_text(path.read_bytes(), str(path))


class TextLines:
    """The lines of a possibly large text file or stream, decoded while read (an ID file of millions of lines).

    ``source`` is a path, or a binary stream (stdin) with ``name`` for messages. Iterating yields
    lines with ``\\n`` line ends; a decoding error raises ``TextFileError`` with the exact line
    (a file is read again from the start to find it; for a stream, the line being read).
    """

    def __init__(self, source: str | Path | BinaryIO, name: str | None = None):
        if isinstance(source, (str, Path)):
            self.path: Path | None = Path(source)
            raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close() / the context manager
        else:
            self.path, raw = None, source
        self.name = name or str(self.path or "<stream>")
        raw = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
        encoding, skip = sniff_encoding(raw.peek(4)[:4])  # type: ignore[attr-defined]
        raw.read(skip)
        self.encoding = encoding
        self._text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline=None)
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._text:
                self.line += 1
                if "\0" in line:
                    _check_nul(line, self.name, self.line)
                yield line
        except UnicodeDecodeError:
            if self.path is not None:
                decode_text(self.path.read_bytes(), self.name)  # raises with the exact line
            raise TextFileError(
                f"{self.name}: not valid {self.encoding.upper()} text at or after line {self.line + 1}; {_SAVE_AS}"
            ) from None

    def close(self) -> None:
        if self.path is not None:
            self._text.close()
        else:
            self._text.detach()

    def __enter__(self) -> TextLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
