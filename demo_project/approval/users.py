"""The demo's manager: a staff user who may decide approvals and look at executions in the admin."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User

MANAGER_USERNAME = "alice"
MANAGER_PASSWORD = "alice-approves"
MANAGER_PERMISSIONS = (
    "zart_approvals.decide_approval",
    "zart_django.view_execution",
    "zart_django.view_stepresult",
    "zart_django.view_event",
    "zart_approvals.view_approvalrequest",
    "zart_approvals.view_approvalrecord",
)


def ensure_manager() -> User:
    """Create (or reset) the manager "Alice (Manager)" with the demo password; return her."""
    user, _ = User.objects.get_or_create(username=MANAGER_USERNAME)
    user.first_name, user.last_name = "Alice", "(Manager)"
    user.is_staff = True
    user.is_active = True
    user.set_password(MANAGER_PASSWORD)
    user.save()
    user.user_permissions.set(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in (name.split(".") for name in MANAGER_PERMISSIONS)
    )
    return User.objects.get(pk=user.pk)
