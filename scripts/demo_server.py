#!/usr/bin/env python3
"""Serve the synthetic demo hotel catalogue on loopback; prints its base URL when ready."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hotelimages.demo import catalogue  # noqa: E402
from hotelimages.demo.server import serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hotels", type=int, default=300, help="number of hotels (default 300)")
    parser.add_argument("--first-id", type=int, default=catalogue.FIRST_ID, help="first hotel ID")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--faults", default="", help="e.g. image_404:5,listing_500_once:7 (see catalogue.py)")
    parser.add_argument("--slow-seconds", type=float, default=3.0, help="delay of the *_slow faults")
    args = parser.parse_args()
    faults = catalogue.parse_faults(args.faults)

    def ready(url: str) -> None:
        print(f"Demo hotel server listening on {url}", flush=True)
        print(f"Listing URL template: {url}/hotels/{{hotel_id}}/photos", flush=True)

    serve(args.hotels, args.port, args.host, args.first_id, faults, args.slow_seconds, on_ready=ready)


if __name__ == "__main__":
    main()
