"""System checks for the approvals app's settings."""

from __future__ import annotations

from typing import Any

from django.core.checks import Warning

from zart_django import conf


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
