"""Test settings with the engine on a connection of its own: ``ZART["DATABASE"] = "zart"``.

``default`` and ``zart`` are two databases (SQLite files, or PostgreSQL databases), named by
ZART_ALIAS_DEFAULT and ZART_ALIAS_ZART. ZART_ALIAS_ROUTER=1 adds ``ZartRouter``.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, ZART

DATABASES = {
    "default": {**DATABASES["default"], "NAME": os.environ["ZART_ALIAS_DEFAULT"], "TEST": {}},
    "zart": {**DATABASES["default"], "NAME": os.environ["ZART_ALIAS_ZART"], "TEST": {}},
}
ZART = {**ZART, "DATABASE": "zart"}
if os.environ.get("ZART_ALIAS_ROUTER"):
    DATABASE_ROUTERS = ["zart_django.routers.ZartRouter"]
