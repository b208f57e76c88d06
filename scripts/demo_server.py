#!/usr/bin/env python3
"""Serve the synthetic demo hotels on loopback (``devtools.demo_server``); prints its base URL when ready.

Needs the checkout on the import path: the venv of ``scripts/dev.sh setup`` has it; elsewhere run
``python -m devtools.demo_server`` from the checkout's root.
"""

from devtools.demo_server import main

if __name__ == "__main__":
    main()
