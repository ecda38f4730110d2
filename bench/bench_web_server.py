"""``bordin serve`` with Nagle's algorithm off on the accepted sockets (bench-only variant).

Django's runserver writes the status line and headers, then the body, as separate unbuffered
``send`` calls (``socketserver.StreamRequestHandler.wbufsize = 0``) without ``TCP_NODELAY``.
On a keep-alive connection the body then waits for the client's delayed ACK (~40 ms on
Linux) on every request after the first. ``bench_web.py --nodelay`` serves through this
module to measure the app without that transport delay; the app itself is unchanged.
"""

from __future__ import annotations

import sys

from django.core.servers.basehttp import WSGIRequestHandler

from bordin.cli import main

WSGIRequestHandler.disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY in setup()

if __name__ == "__main__":
    sys.argv[0] = "bordin"
    main()
