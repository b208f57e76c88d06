"""Env files and ID files as Windows saves them: BOMs, UTF-16, CRLF; errors name the file and line only."""

from __future__ import annotations

import codecs
import io
import subprocess
import sys

import pytest

from hotelimages.envfile import EnvFileError, load_env_files, read_env_file
from hotelimages.idfiles import Candidate, read_records
from hotelimages.textfiles import TextFileError, TextLines, decode_text, sniff_encoding

PASSWORD = "s3cret-Pw"
ENV_TEXT = (f"# lent PC\r\nREDIS_URL=redis://:{PASSWORD}@10.0.0.5:6379/0\r\n"
            "export NODE_ID=pc12\r\nIMAGES_STORE=\"D:/image\"\r\n")
EXPECTED = {"REDIS_URL": f"redis://:{PASSWORD}@10.0.0.5:6379/0", "NODE_ID": "pc12", "IMAGES_STORE": "D:/image"}

ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 BOM": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16 LE BOM": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16 BE BOM": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf-32 LE BOM": lambda t: codecs.BOM_UTF32_LE + t.encode("utf-32-le"),
    "LF only": lambda t: t.replace("\r\n", "\n").encode("utf-8"),
    "CR only": lambda t: t.replace("\r\n", "\r").encode("utf-8"),
}


def test_sniff_encoding_by_byte_order_mark():
    assert sniff_encoding(b"\xef\xbb\xbfAB") == ("utf-8", 3)
    assert sniff_encoding(b"\xff\xfeA\x00") == ("utf-16-le", 2)
    assert sniff_encoding(b"\xfe\xff\x00A") == ("utf-16-be", 2)
    assert sniff_encoding(b"\xff\xfe\x00\x00") == ("utf-32-le", 4)
    assert sniff_encoding(b"ABCD") == ("utf-8", 0)


@pytest.mark.parametrize("kind", list(ENCODINGS))
def test_env_file_in_every_windows_encoding(tmp_path, kind):
    path = tmp_path / "node.env"
    path.write_bytes(ENCODINGS[kind](ENV_TEXT))
    assert read_env_file(path) == EXPECTED


@pytest.mark.parametrize("kind", list(ENCODINGS))
def test_id_file_in_every_windows_encoding(tmp_path, kind):
    path = tmp_path / "ids.txt"
    path.write_bytes(ENCODINGS[kind]("7892470\r\n\r\n# note\r\n7892471\r\n"))
    records = list(read_records(path))
    assert [(r.hotel_id, r.line) for r in records if isinstance(r, Candidate)] == [("7892470", 1), ("7892471", 4)]


def test_csv_id_file_in_utf16_with_crlf(tmp_path):
    path = tmp_path / "hotels.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "name,hotel_id\r\nA,7892470\r\nB,7892471\r\n".encode("utf-16-le"))
    assert [r.hotel_id for r in read_records(path, csv_column="hotel_id")] == ["7892470", "7892471"]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (f"NODE_ID=pc12\nREDIS_URL=redis://:{PASSWORD}\xe9@h/0\n".encode("latin-1"), 2),  # "ANSI" (cp1252)
        (f"NODE_ID=pc12\nA=1\nREDIS_URL=redis://:{PASSWORD}@h/0\n".encode("utf-16-le"), 1),  # UTF-16 without BOM
    ],
)
def test_undecodable_env_file_names_file_and_line_not_the_password(tmp_path, data, line):
    path = tmp_path / "node.env"
    path.write_bytes(data)
    with pytest.raises(TextFileError) as info:
        read_env_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert PASSWORD not in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"NODE_ID=pc12\nREDIS_URL redis://:{PASSWORD}@h/0\n", 2),  # no '='
        (f"NODE_ID=pc12\n\n{PASSWORD}\n", 3),  # a bare word
        (f"REDIS-URL=redis://:{PASSWORD}@h/0\n", 1),  # not a variable name
        (f"# x\nREDIS_URL='redis://:{PASSWORD}@h/0\n", 2),  # unclosed quote
    ],
)
def test_bad_env_line_names_file_and_line_not_the_value(tmp_path, text, line):
    path = tmp_path / "node.env"
    path.write_text(text)
    with pytest.raises(EnvFileError) as info:
        read_env_file(path)
    assert str(info.value).startswith(f"{path}:{line}: expected NAME=VALUE")
    assert PASSWORD not in str(info.value)


def test_env_values_are_literal(tmp_path):
    path = tmp_path / "node.env"
    path.write_text("A=1\nREDIS_URL=redis://:pa$$${A}word@h/0\n")
    assert read_env_file(path)["REDIS_URL"] == "redis://:pa$$${A}word@h/0"


def test_env_file_does_not_override_the_environment(tmp_path):
    path = tmp_path / "node.env"
    path.write_bytes(codecs.BOM_UTF8 + b"NODE_ID=from-file\r\nIMAGES_STORE=/srv/img\r\n")
    environ = {"NODE_ID": "from-env"}
    assert load_env_files([path], environ) == {"NODE_ID": "from-file", "IMAGES_STORE": "/srv/img"}
    assert environ == {"NODE_ID": "from-env", "IMAGES_STORE": "/srv/img"}


def test_undecodable_id_file_names_the_exact_line(tmp_path):
    path = tmp_path / "ids.txt"
    # far enough in that the decoder reads it in a later chunk than line 1
    path.write_bytes(b"".join(b"%07d\r\n" % i for i in range(20_000)) + b"\xff\xfe bad\r\n1\r\n")
    with pytest.raises(TextFileError, match=rf"^{path}:20001: not valid UTF-8"):
        list(read_records(path))


def test_stdin_stream_with_bom():
    lines = TextLines(io.BufferedReader(io.BytesIO(codecs.BOM_UTF16_BE + "1\r\n2\n".encode("utf-16-be"))), "<stdin>")
    assert list(lines) == ["1\n", "2\n"]
    assert decode_text(b"\xef\xbb\xbfa\r\nb", "x") == "a\nb"


def test_node_command_with_a_bad_env_file_says_one_line_and_exits_2(tmp_path):
    path = tmp_path / "node.env"
    path.write_bytes(f"REDIS_URL=redis://:{PASSWORD}@h/0\nNODE_ID pc12\n".encode())
    proc = subprocess.run([sys.executable, "-m", "hotelimages.cli", "node", "--env-file", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"hotelimages node: {path}:2: expected NAME=VALUE"]
    assert PASSWORD not in proc.stdout + proc.stderr
