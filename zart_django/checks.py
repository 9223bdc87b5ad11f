"""System checks for the ``ZART`` settings and the database they run on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from . import conf

_POSITIVE = ("POLL_INTERVAL", "LEASE", "CONCURRENCY", "BATCH_SIZE")


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """E001: unknown ZART key; E002: a setting that must be a positive number is not."""
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
    return errors


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
    """E003: DISPATCH is not a known engine; E004: django_q chosen but not installed."""
    dispatch = conf.get("DISPATCH")
    if dispatch not in ("worker", "django_q"):
        return [
            Error(
                f"ZART['DISPATCH'] must be 'worker' or 'django_q', not {dispatch!r}",
                id="zart_django.E003",
            )
        ]
    if dispatch == "django_q" and "django_q" not in settings.INSTALLED_APPS:
        return [
            Error(
                "ZART['DISPATCH'] is 'django_q' but django_q is not installed",
                hint='add "django_q" to INSTALLED_APPS and configure Q_CLUSTER',
                id="zart_django.E004",
            )
        ]
    return []


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
