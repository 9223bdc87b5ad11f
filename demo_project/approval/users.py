"""The demo's manager: a staff user who may decide approvals and look at executions in the admin."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User

MANAGER_USERNAME = "alice"
MANAGER_PASSWORD = "alice-approves"
MANAGER_PERMISSIONS = (
    "decide_approval",
    "view_execution",
    "view_stepresult",
    "view_event",
    "view_approvalrequest",
    "view_approvalrecord",
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
        Permission.objects.filter(
            content_type__app_label="zart_django", codename__in=MANAGER_PERMISSIONS
        )
    )
    return User.objects.get(pk=user.pk)
