from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApprovalsConfig(AppConfig):
    """Approvals, an app on top of the engine (``zart_django``, which knows nothing of it): add
    ``"zart_django.approvals"`` to ``INSTALLED_APPS`` after ``"zart_django"``."""

    name = "zart_django.approvals"
    label = "zart_approvals"
    verbose_name = _("Approvals")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Reserve the ``approval:`` event names, add the approvals to the engine's REST API,
        ``manage.py zart show`` and ready-made groups (the admin's part is in ``admin``), mail a
        reassigned request's delegate, and register the app's system checks (the inbox's login
        settings, the mail's links)."""
        from django.core import checks

        from zart_django import groups
        from zart_django.api import extensions
        from zart_django.management.cli import add_show_section

        from . import notifications
        from .checks import check_email_links, check_login_urls
        from .cli import SECTION
        from .signals import approval_reassigned
        from .waiting import api_refusal, reserve_decision_events

        reserve_decision_events()
        approval_reassigned.connect(notifications.on_reassigned, dispatch_uid="zart-reassigned")
        checks.register(check_login_urls, checks.Tags.urls)
        checks.register(check_email_links, checks.Tags.compatibility)
        extensions.add_route("approvals", "zart_django.approvals.api.ApprovalViewSet", "approval")
        extensions.add_permission(
            "zart_approvals.decide_approval", "decide approvals at /api/approvals/"
        )
        extensions.add_event_check(api_refusal)
        add_show_section("approvals", SECTION)
        groups.grant(
            "zart operators",
            ("zart_approvals.view_approvalrequest", "zart_approvals.view_approvalrecord"),
        )
        groups.grant("zart approvers", ("zart_approvals.decide_approval",))
