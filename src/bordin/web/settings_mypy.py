"""Settings for static type checking only (django-stubs' mypy plugin imports settings).

Never use this module to run Bordin: it sets a placeholder secret key so that the plugin can
load :mod:`bordin.web.settings` without a real one.
"""

from __future__ import annotations

import os

os.environ.setdefault("BORDIN_SECRET_KEY", "type-checking-only-never-used-to-serve")

from bordin.web.settings import *  # noqa: F403 - re-export every real setting
