"""Issue 9: schemathesis, with every check, against the live API through Django's WSGI app, on the
test database: a schema-valid request is never refused and an invalid one never accepted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.approval_helpers import make_user
from zart_django.api.permissions import PERMISSIONS
from zart_django.api.schema import build_schema
from zart_django.api.urls import router

pytestmark = pytest.mark.django_db

SEED = 9
MAX_EXAMPLES = 25


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """Requests served by the WSGI app keep the test's connection (and transaction) open, as
    Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token_headers(in_test_transaction) -> dict[str, str]:
    """The headers of a user holding every zart permission, authenticated by token."""
    token = Token.objects.create(user=make_user("fuzz", *PERMISSIONS))
    return {"Authorization": f"Token {token.key}"}


UNCHECKED = {
    "POST /api/executions/": [positive_data_acceptance],
    "GET /api/executions/": [positive_data_acceptance],
}
"""The checks left off: a start's ``input`` is documented as any JSON, but each task reads its
own input type (checked at start: a 400 naming the missing fields), which the schema does not
spell per task; so a schema-valid start may rightly be refused. The list's ``cursor`` is opaque:
only a cursor a page's ``next`` link gave is accepted, any other string is a 400 naming it."""

schema = schemathesis.openapi.from_dict(build_schema(None, router.urls, "api/"))
schema.app = get_wsgi_application()
schema.config.seed = SEED
schema.config.generation.update(max_examples=MAX_EXAMPLES, database="none")


@schema.parametrize()
# One user and token for all the cases of an operation; what they store accumulates on purpose.
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_answers_as_its_schema_says(case: schemathesis.Case, token_headers) -> None:
    excluded = UNCHECKED.get(case.operation.label, [])
    case.call_and_validate(headers=token_headers, excluded_checks=excluded)
