"""The demo project brands the inbox from its top-level templates/ folder; a project without
the override gets the app's own base template."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from tests.approval_helpers import logged_in, make_user, start_parked

pytestmark = pytest.mark.django_db

DEMO_BRAND = "Acme Corp · Approvals"
DEMO_ACCENT = "--accent: #7b3fb5"


def inbox_page() -> str:
    start_parked("brand-1")
    response = logged_in(make_user("alice", "zart_approvals.decide_approval")).get("/approvals/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_demo_project_overrides_the_inbox_base_template():
    page = inbox_page()
    assert DEMO_BRAND in page and DEMO_ACCENT in page
    assert "brand-1" in page  # the app's page, inside the demo's frame


def test_without_the_override_the_inbox_renders_the_apps_own_base_template():
    templates = [{**settings.TEMPLATES[0], "DIRS": []}]
    with override_settings(TEMPLATES=templates):
        page = inbox_page()
    assert DEMO_BRAND not in page and DEMO_ACCENT not in page
    assert '">Approvals</a>' in page and "brand-1" in page
