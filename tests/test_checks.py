"""System checks on the ZART settings and the database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from zart_django.checks import check_settings, check_sqlite_transactions


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_defaults_pass(settings):
    settings.ZART = {}
    assert check_settings() == []


def test_unknown_setting_is_named_with_the_known_ones(settings):
    settings.ZART = {"POLL_INTERVALL": 1}
    (error,) = check_settings()
    assert error.id == "zart_django.E001"
    assert "POLL_INTERVALL" in error.msg and "POLL_INTERVAL" in error.hint


def test_non_positive_numbers_are_refused(settings):
    settings.ZART = {"LEASE": 0, "CONCURRENCY": "4"}
    assert ids(check_settings()) == ["zart_django.E002", "zart_django.E002"]


@pytest.mark.filterwarnings("ignore:Overriding setting INSTALLED_APPS")
def test_dispatch_must_be_known_and_installed(settings):
    settings.ZART = {"DISPATCH": "celery"}
    assert ids(check_settings()) == ["zart_django.E003"]
    settings.ZART = {"DISPATCH": "django_q"}
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_q"]
    assert ids(check_settings()) == ["zart_django.E004"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_without_immediate_transactions_is_warned(settings):
    settings.DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3", "OPTIONS": {}}
    }
    assert ids(check_sqlite_transactions()) == ["zart_django.W001"]
    settings.DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}
    assert check_sqlite_transactions() == []


def test_the_engine_imports_without_psycopg_for_sqlite_projects():
    """Issue 9: psycopg was imported at the top of notify.py, so every project needed it."""
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import django; django.setup()\n"
        "from zart_django import notify, store, worker  # noqa\n"
        "print('imported')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "ZART_DB": "sqlite"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "imported", done.stderr
