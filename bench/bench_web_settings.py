"""Bench-only Django settings: the app's settings, with a URLconf that adds a bare view.

Used by ``bench/bench_web.py`` (both in-process and for the ``bordin serve`` subprocess) so the
baseline view runs behind exactly the same middleware, server and database configuration as
the app. Nothing here is part of the app.
"""

from __future__ import annotations

from bordin.web.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_web_urls"
