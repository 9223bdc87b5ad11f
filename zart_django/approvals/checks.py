"""System checks for a project that includes the inbox (``zart_django.approvals.urls``): its
login settings must lead somewhere, or people who are not logged in end on a 404."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning

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
