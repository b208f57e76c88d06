"""A raw loopback server for node-level hostile tests: hotel listings and images sent byte by byte.

``python tests/hostile_image_server.py MODE --hotels N [--events FILE]`` prints
``listening on <base URL>`` and serves ``/hotels/<id>/photos`` (one image per hotel) until killed.
Modes (what each image answer is):

- ``small``: a 60 KB PNG with Content-Length (a node's normal figure);
- ``big``: an 8 MiB PNG with Content-Length; ``chunks``: the same PNG in 2-byte chunks;
- ``hosts``: a 1 MiB PNG, each hotel's image on its own port (its own origin);
  ``one-host``: the same images all on the listing's port;
- ``trickle``: a small PNG after a 60 KB head written one byte at a time; ``head``: the same
  answer written at once.

With ``--events``, the closing time (``time.time()``) of every image connection is appended there.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import sys
import time

from PIL import Image

MIB = 1024 * 1024


def png(target_size: int) -> bytes:
    """An uncompressed PNG of noise, about ``target_size`` bytes."""
    side = max(8, int((target_size / 3) ** 0.5))
    rng = random.Random(target_size)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    return out.getvalue()


def answer(body: bytes, extra_head: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" + extra_head
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def chunked(body: bytes, size: int) -> bytes:
    parts = [b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"]
    parts += [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class Server:
    def __init__(self, mode: str, hotels: int, events: str | None):
        self.mode = mode
        self.hotels = hotels
        self.events = events
        self.image_ports: list[int] = []
        big_head = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"v" * 80) for i in range(600))  # ~60 KB
        self.answers = {
            "small": answer(png(60_000)),
            "big": answer(png(8 * MIB)),
            "chunks": chunked(png(8 * MIB), 2),
            "hosts": answer(png(MIB)),
            "one-host": answer(png(MIB)),
            "trickle": answer(png(20_000), big_head),
            "head": answer(png(20_000), big_head),
        }

    async def start(self) -> str:
        listing = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = listing.sockets[0].getsockname()[1]
        self.servers = [listing]
        if self.mode == "hosts":
            for _ in range(self.hotels):
                server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
                self.servers.append(server)
                self.image_ports.append(server.sockets[0].getsockname()[1])
        return f"http://127.0.0.1:{self.port}"

    def image_url(self, index: int, hotel_id: str) -> str:
        port = self.image_ports[index] if self.mode == "hosts" else self.port
        return f"http://127.0.0.1:{port}/img/{hotel_id}.png"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        served_image = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/hotels/"):
                    hotel_id = path.split("/")[2]
                    index = int(hotel_id[1:])
                    body = json.dumps({"hotel_id": hotel_id, "next": None, "images": [
                        {"id": "photo", "category": "cover", "url": self.image_url(index, hotel_id)}]}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                elif self.mode == "trickle":
                    served_image = True
                    data = self.answers["trickle"]
                    end = data.index(b"\r\n\r\n") + 4
                    for i in range(end):
                        writer.write(data[i:i + 1])
                        await writer.drain()
                        await asyncio.sleep(0)
                    writer.write(data[end:])
                else:
                    served_image = True
                    writer.write(self.answers[self.mode])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            if served_image and self.events:
                with open(self.events, "a") as f:
                    f.write(f"{time.time()}\n")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--hotels", type=int, default=1)
    parser.add_argument("--events")
    args = parser.parse_args()
    server = Server(args.mode, args.hotels, args.events)
    base = await server.start()
    print(f"listening on {base}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
    os._exit(0)
