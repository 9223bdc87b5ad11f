"""A project with only the engine: ``zart_django`` without ``zart_django.approvals`` (and the
REST API), on the SQLite file ``ZART_DB_NAME``. Used by ``test_separation.py`` in subprocesses."""

import os

from demo_project.settings import *  # noqa: F403
from demo_project.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [
    app for app in INSTALLED_APPS if app not in ("zart_django.approvals", "demo_project.approval")
]
DATABASES["default"]["NAME"] = os.environ["ZART_DB_NAME"]
ROOT_URLCONF = "tests.urls_core"
LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/admin/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ZART = {"POLL_INTERVAL": 0.05, "WORKFLOW_MODULES": ["tests.core_workflows"]}
