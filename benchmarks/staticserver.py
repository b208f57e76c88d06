"""A small asyncio HTTP/1.1 static server: the fallback when nginx is missing, and a tiny-image server.

Serves files under ``--root`` with keep-alive and ``sendfile``; any path under
``/tiny/`` answers with ``<root>/tiny.jpg`` held in memory. Prints
``listening on http://127.0.0.1:PORT`` once ready.

    python -m benchmarks.staticserver --root DIR [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

TYPES = {".jpg": "image/jpeg", ".json": "application/json"}


class StaticHandler:
    """Answers GET and HEAD requests for files under one root."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        tiny = self.root / "tiny.jpg"
        self.tiny = tiny.read_bytes() if tiny.exists() else b""

    def resolve(self, target: str) -> Path | None:
        path = unquote(urlsplit(target).path)
        candidate = (self.root / path.lstrip("/")).resolve()
        if self.root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *headers = head.decode("latin-1").split("\r\n")
                method, target, _version = line.split(" ", 2)
                close = any(h.lower() == "connection: close" for h in headers)
                if target.startswith("/tiny/"):
                    body, path = self.tiny, None
                    size, ctype = len(body), "image/jpeg"
                else:
                    body, path = b"", self.resolve(target)
                    if path is None:
                        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                        await writer.drain()
                        continue
                    size = path.stat().st_size
                    ctype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {size}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n".encode()
                )
                if method != "HEAD":
                    if path is None:
                        writer.write(body)
                    else:
                        await writer.drain()
                        with open(path, "rb") as f:
                            await loop.sendfile(writer.transport, f)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def serve(root: Path, port: int) -> None:
    handler = StaticHandler(root)
    server = await asyncio.start_server(handler.handle, "127.0.0.1", port, backlog=1024)
    print(f"listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(Path(args.root), args.port))


if __name__ == "__main__":
    main()
