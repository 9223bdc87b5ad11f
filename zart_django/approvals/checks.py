"""System checks for the approvals app: the inbox's login settings must lead somewhere (else
people who are not logged in end on a 404), and approval mail needs absolute links."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning

from zart_django import conf
from zart_django.checks import _mounted_apps, _reaches_a_page

INBOX_APP = "zart_approvals"
"""The ``app_name`` of ``zart_django.approvals.urls``."""


def check_login_urls(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W001/W002: ``LOGIN_URL``/``LOGIN_REDIRECT_URL`` reach no page while the inbox is included
    (nothing is checked for a project that does not include it)."""
    if INBOX_APP not in _mounted_apps():
        return []
    found = []
    if not _reaches_a_page(settings.LOGIN_URL):
        found.append(
            Warning(
                f"LOGIN_URL {settings.LOGIN_URL!r} reaches no page, so the inbox sends people who"
                " are not logged in to a 404",
                hint='set LOGIN_URL = "zart_approvals:login" (the inbox\'s login page), or point'
                " it at your own",
                id="zart_approvals.W001",
            )
        )
    if not _reaches_a_page(settings.LOGIN_REDIRECT_URL):
        found.append(
            Warning(
                f"LOGIN_REDIRECT_URL {settings.LOGIN_REDIRECT_URL!r} reaches no page, so logging"
                " in from the login page itself ends on a 404",
                hint='set LOGIN_REDIRECT_URL = "zart_approvals:inbox", or point it at your own'
                " page",
                id="zart_approvals.W002",
            )
        )
    return found


def check_email_links(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """W003: approval mail is on but ``APPROVALS_BASE_URL`` is empty, so its links are bare
    paths that a mail reader cannot open."""
    if not conf.get("APPROVALS_EMAIL") or str(conf.get("APPROVALS_BASE_URL")).strip():
        return []
    return [
        Warning(
            "ZART['APPROVALS_EMAIL'] is on but ZART['APPROVALS_BASE_URL'] is empty, so the links"
            " in approval emails are paths without a host",
            hint='set ZART["APPROVALS_BASE_URL"] to where people reach the site, e.g.'
            ' "https://ops.example.com", or ZART["APPROVALS_EMAIL"] = False',
            id="zart_approvals.W003",
        )
    ]
