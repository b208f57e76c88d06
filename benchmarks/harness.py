"""What every benchmark mode sets up first: the corpus, its static server, listings and a private Redis."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from benchmarks import corpus as cp
from benchmarks.configs import Context, settle_after_cleanup
from benchmarks.server import StaticServer
from devtools.localredis import LocalRedis


class Bench:
    """The corpus, static server and Redis of one invocation, started and stopped together."""

    def __init__(self, args: argparse.Namespace, images: int):
        self.args = args
        self.workdir: Path = args.workdir
        self.images = images

    def __enter__(self) -> Context:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settle_after_cleanup(self.workdir)
        corpus = cp.ensure_corpus(self.workdir / "corpus", self.images)
        print(f"bench: corpus {corpus.images} JPEGs, mean {corpus.mean_bytes / 1024:.1f} KiB, "
              f"total {corpus.total_bytes / 2**20:.0f} MiB in {corpus.root}")
        self.server = StaticServer(Path(corpus.root), self.workdir, prefer=self.args.server).start()
        if self.server.note:
            print(f"bench: {self.server.note}")
        print(f"bench: static server {self.server.kind} {self.server.version} at {self.server.base_url}")
        listings = Path(corpus.root) / "listings"
        shutil.rmtree(listings, ignore_errors=True)
        hotel_ids = cp.write_listings(Path(corpus.root), corpus.images, self.server.base_url)
        urls_file = self.workdir / "urls.txt"
        urls_file.write_text("\n".join(cp.image_urls(corpus.images, self.server.base_url)) + "\n")
        self.redis = LocalRedis(workdir=self.workdir / "redis").start()
        node_settings = dict(item.split("=", 1) for item in self.args.node_set)
        self.ctx = Context(self.workdir, corpus, self.server, self.redis.url, urls_file, hotel_ids,
                           node_settings=node_settings, keep=self.args.keep)
        return self.ctx

    def __exit__(self, *exc: object) -> None:
        self.ctx.cleanup()
        self.redis.stop()
        self.server.stop()
