"""System checks on the ZART settings and the database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.template import TemplateDoesNotExist
from rest_framework.test import APIClient

from tests.approval_helpers import make_user
from tests.conftest import ROOT
from zart_django.approvals.checks import check_email_links, check_login_urls
from zart_django.checks import check_settings, check_sqlite_transactions, check_url_integration


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
    (error,) = check_settings()
    assert error.id == "zart_django.E004"
    assert '"django_q" to INSTALLED_APPS' in error.hint


@pytest.mark.parametrize(
    "cluster",
    [None, {}, {"name": "shop", "workers": 2}, {"name": "shop", "redis": {}}, {"orm": ""}],
    ids=["unset", "empty", "no-broker-key", "empty-redis", "empty-orm"],
)
def test_django_q_without_a_broker_is_an_error_saying_what_to_add(settings, cluster):
    """Issue 9: with no broker django-q2 quietly tries Redis on localhost; say so at check."""
    settings.ZART = {"DISPATCH": "django_q"}
    if cluster is None:
        del settings.Q_CLUSTER
    else:
        settings.Q_CLUSTER = cluster
    (error,) = check_settings()
    assert error.id == "zart_django.E008"
    assert "Q_CLUSTER" in error.msg
    assert '"redis": {"host": "127.0.0.1", "port": 6379, "db": 0}' in error.hint
    assert '"orm": "default"' in error.hint


@pytest.mark.parametrize(
    "broker",
    [
        {"redis": {"host": "127.0.0.1", "port": 6379}},
        {"redis": "redis://127.0.0.1:6379/0"},
        {"orm": "default"},
        {"django_redis": "default"},
        {"broker_class": "myproject.brokers.Custom"},
    ],
)
def test_django_q_with_a_broker_passes(settings, broker):
    settings.ZART = {"DISPATCH": "django_q"}
    settings.Q_CLUSTER = {"name": "shop", **broker}
    assert check_settings() == []


@pytest.mark.filterwarnings("ignore:Overriding setting INSTALLED_APPS")
def test_the_broker_is_not_asked_for_with_the_plain_worker(settings):
    settings.ZART = {"DISPATCH": "worker"}
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_q"]
    del settings.Q_CLUSTER
    assert check_settings() == []


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


def url_checks() -> list[str]:
    return ids(check_url_integration()) + ids(check_login_urls())


@pytest.mark.filterwarnings("ignore:Overriding setting INSTALLED_APPS")
@pytest.mark.django_db
def test_the_api_included_without_rest_framework_is_an_error_with_the_fix(settings):
    """Issue 9: /api/ answered 500 TemplateDoesNotExist and `manage.py check` said nothing."""
    client = APIClient()
    client.force_authenticate(make_user("ops", "zart_django.view_execution"))
    assert "zart_django.E006" not in url_checks()
    assert client.get("/api/executions/", HTTP_ACCEPT="text/html").status_code == 200
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "rest_framework"]
    (error,) = [m for m in check_url_integration() if m.id == "zart_django.E006"]
    assert '"rest_framework"' in error.hint
    with pytest.raises(TemplateDoesNotExist):
        client.get("/api/executions/", HTTP_ACCEPT="text/html")


@pytest.mark.filterwarnings("ignore:Overriding setting INSTALLED_APPS")
def test_token_login_without_authtoken_is_an_error_with_the_fix(settings):
    assert "zart_django.E007" not in url_checks()
    settings.INSTALLED_APPS = [
        a for a in settings.INSTALLED_APPS if a != "rest_framework.authtoken"
    ]
    (error,) = [m for m in check_url_integration() if m.id == "zart_django.E007"]
    assert '"rest_framework.authtoken"' in error.hint


def test_login_urls_that_reach_no_page_are_warned_naming_the_inbox_login(settings, client):
    """Issue 9: /approvals/ sent people to Django's default /accounts/login/, a 404, and after
    logging in to /accounts/profile/, another."""
    settings.LOGIN_URL = "/accounts/login/"  # Django's defaults, as startproject leaves them
    settings.LOGIN_REDIRECT_URL = "/accounts/profile/"
    assert url_checks() == ["zart_approvals.W001", "zart_approvals.W002"]
    (login, after) = check_login_urls()
    assert '"zart_approvals:login"' in login.hint and '"zart_approvals:inbox"' in after.hint
    sent_to = client.get("/approvals/").url
    assert client.get(sent_to).status_code == 404

    settings.LOGIN_URL = "zart_approvals:login"  # what the hints say
    settings.LOGIN_REDIRECT_URL = "zart_approvals:inbox"
    assert url_checks() == []
    sent_to = client.get("/approvals/").url
    assert client.get(sent_to).status_code == 200


def test_login_urls_on_another_host_or_a_page_of_the_project_pass(settings):
    settings.LOGIN_URL = "https://sso.example.com/login"
    settings.LOGIN_REDIRECT_URL = "/admin/"
    assert url_checks() == []


@pytest.mark.filterwarnings("ignore:Overriding setting INSTALLED_APPS")
def test_nothing_is_checked_for_urls_the_project_does_not_include(settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    settings.LOGIN_URL = "/accounts/login/"
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "rest_framework"]
    assert url_checks() == []


def test_approval_mail_without_a_base_url_is_warned_with_the_setting_to_add(settings):
    settings.ZART = {**settings.ZART, "APPROVALS_BASE_URL": ""}
    (warning,) = check_email_links()
    assert warning.id == "zart_approvals.W003"
    assert 'ZART["APPROVALS_BASE_URL"]' in warning.hint
    assert warning in run_checks()  # registered by the approvals app
    settings.ZART = {**settings.ZART, "APPROVALS_EMAIL": False}
    assert check_email_links() == []
    settings.ZART = {**settings.ZART, "APPROVALS_EMAIL": True, "APPROVALS_BASE_URL": "https://x"}
    assert check_email_links() == []
