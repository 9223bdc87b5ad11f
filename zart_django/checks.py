"""System checks for the ``ZART`` settings, the database they run on, and what a project must
add beside the URLs it includes (the API needs ``rest_framework``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.urls import NoReverseMatch, Resolver404, URLResolver, get_resolver, resolve, reverse

from . import conf

_POSITIVE = ("POLL_INTERVAL", "LEASE", "CONCURRENCY", "BATCH_SIZE")


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """E001: unknown ZART key; E002: a setting that must be a positive number is not; E003-E005,
    E008: see below; E009: DATABASE is not a connection alias."""
    errors: list[Any] = []
    given = getattr(settings, "ZART", {})
    if not isinstance(given, dict):
        return [Error("ZART must be a dict", id="zart_django.E001")]
    for key in sorted(set(given) - set(conf.DEFAULTS)):
        errors.append(
            Error(
                f"unknown ZART setting {key!r}",
                hint=f"known settings: {', '.join(sorted(conf.DEFAULTS))}",
                id="zart_django.E001",
            )
        )
    for key in _POSITIVE:
        value = conf.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(
                Error(
                    f"ZART[{key!r}] must be a positive number, not {value!r}", id="zart_django.E002"
                )
            )
    errors.extend(_check_dispatch())
    errors.extend(_check_retention())
    errors.extend(_check_database())
    return errors


def _check_database() -> list[Any]:
    """E009: DATABASE names no connection in ``DATABASES``."""
    alias = conf.database()
    if isinstance(alias, str) and alias in settings.DATABASES:
        return []
    return [
        Error(
            f"ZART['DATABASE'] is {alias!r}, which is not an alias in DATABASES",
            hint=f"use one of {', '.join(sorted(settings.DATABASES))}, or leave it out"
            " for 'default'",
            id="zart_django.E009",
        )
    ]


def _check_retention() -> list[Any]:
    """E005: RETENTION is neither None nor a positive duration."""
    value = conf.get("RETENTION")
    try:
        period = conf.retention()
    except ValueError:
        period = None
    if value is None or (period is not None and period.total_seconds() > 0):
        return []
    return [
        Error(
            f"ZART['RETENTION'] must be None or a positive duration, not {value!r}",
            hint='e.g. "30d", "12h" or a timedelta; None keeps finished executions forever',
            id="zart_django.E005",
        )
    ]


def _check_dispatch() -> list[Any]:
    """E003: DISPATCH is not a known engine; with django_q, E004: not installed, E008: no
    broker."""
    dispatch = conf.get("DISPATCH")
    if dispatch not in ("worker", "django_q"):
        return [
            Error(
                f"ZART['DISPATCH'] must be 'worker' or 'django_q', not {dispatch!r}",
                id="zart_django.E003",
            )
        ]
    if dispatch != "django_q":
        return []
    errors = []
    if "django_q" not in settings.INSTALLED_APPS:
        errors.append(
            Error(
                "ZART['DISPATCH'] is 'django_q' but django_q is not in INSTALLED_APPS",
                hint='add "django_q" to INSTALLED_APPS and run migrate'
                ' (pip install "zart-django[django-q]" installs it)',
                id="zart_django.E004",
            )
        )
    errors.extend(_check_broker())
    return errors


Q_BROKERS = ("redis", "django_redis", "orm", "sqs", "mongo", "iron_mq", "broker_class")
"""The ``Q_CLUSTER`` keys that name a django-q2 broker."""


def _check_broker() -> list[Any]:
    """E008: ``Q_CLUSTER`` is missing, or names no broker (or an empty one), so django-q2 would
    quietly try Redis on localhost and every wake-up would go nowhere."""
    cluster = getattr(settings, "Q_CLUSTER", None)
    if isinstance(cluster, dict) and any(cluster.get(key) for key in Q_BROKERS):
        return []
    what = "is not set" if cluster is None else "names no broker"
    return [
        Error(
            f"ZART['DISPATCH'] is 'django_q' but Q_CLUSTER {what}"
            f" (one of {', '.join(repr(key) for key in Q_BROKERS)} with a value)",
            hint='set Q_CLUSTER = {"name": "myproject", "redis": {"host": "127.0.0.1",'
            ' "port": 6379, "db": 0}}, or "orm": "default" in place of "redis" to use the'
            " database as the broker",
            id="zart_django.E008",
        )
    ]


@register(Tags.compatibility)
def check_sqlite_transactions(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W001: SQLite without immediate transactions makes concurrent workers fail with 'locked'."""
    warnings = []
    for alias, db in settings.DATABASES.items():
        if "sqlite3" in db.get("ENGINE", "") and (
            db.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE"
        ):
            warnings.append(
                Warning(
                    f"database {alias!r} is SQLite without immediate transactions",
                    hint='add "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20}'
                    " so a worker and the web process can write at the same time",
                    id="zart_django.W001",
                )
            )
    return warnings


API_APP = "zart_api"
"""The ``app_name`` of ``zart_django.api.urls``."""
TOKEN_AUTHENTICATION = "rest_framework.authentication.TokenAuthentication"


@register(Tags.urls)
def check_url_integration(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """E006: the API is included without ``rest_framework`` installed; E007: token login without
    ``rest_framework.authtoken``."""
    mounted = _mounted_apps()
    messages: list[Any] = []
    if API_APP in mounted:
        messages.extend(_check_rest_framework())
    return messages


def _mounted_apps() -> set[str]:
    """The ``app_name`` of every URLconf the project's URLconf includes, at any depth (none if it
    does not load: Django's own checks report that)."""
    try:
        patterns = get_resolver().url_patterns
    except ImportError:
        return set()
    names: set[str] = set()
    pending = list(patterns)
    while pending:
        pattern = pending.pop()
        if isinstance(pattern, URLResolver):
            names.add(pattern.app_name or "")
            pending.extend(pattern.url_patterns)
    return names


def _check_rest_framework() -> list[Any]:
    if not apps.is_installed("rest_framework"):
        return [
            Error(
                "zart_django.api.urls is included but rest_framework is not in INSTALLED_APPS:"
                " the API's pages cannot render (TemplateDoesNotExist)",
                hint='add "rest_framework" to INSTALLED_APPS',
                id="zart_django.E006",
            )
        ]
    authentication = getattr(settings, "REST_FRAMEWORK", {}).get(
        "DEFAULT_AUTHENTICATION_CLASSES", []
    )
    if TOKEN_AUTHENTICATION in authentication and not apps.is_installed("rest_framework.authtoken"):
        return [
            Error(
                f"REST_FRAMEWORK authenticates with {TOKEN_AUTHENTICATION} but"
                " rest_framework.authtoken is not in INSTALLED_APPS: token login cannot work",
                hint='add "rest_framework.authtoken" to INSTALLED_APPS and run migrate',
                id="zart_django.E007",
            )
        ]
    return []


def _reaches_a_page(target: str | None) -> bool:
    """Whether ``target`` (a URL name, a path, or a URL on another host) leads to a view: a name
    reverses, a path resolves; another host is taken on trust."""
    if not target:
        return False
    target = str(target)
    if "/" not in target:
        try:
            reverse(target)
        except NoReverseMatch:
            return False
        return True
    address = urlsplit(target)
    if address.netloc:
        return True
    try:
        resolve(address.path)
    except Resolver404:
        return False
    return True
