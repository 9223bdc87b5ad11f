"""The API's own OpenAPI schema (``schema/``) and docs page (``docs/``), served beside its routes by
``include("zart_django.api.urls")``.

The schema covers this API only, at the prefix the project mounted it under, and is built with
drf-spectacular's ``AutoSchema`` set on the app's views, so it does not depend on the project's
``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` nor on its other views. The docs page runs Swagger UI from
the project's static files when ``drf_spectacular_sidecar`` is installed, and otherwise lists the
operations on a plain page, saying what to install: it never loads anything from another host.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from django.apps import apps
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import include, path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import APIRootView

F = TypeVar("F", bound=Callable[..., Any])
SIDECAR = "drf_spectacular_sidecar"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _version() -> str:
    """The installed zart-django's version (0.0.0 when it runs from a source tree)."""
    try:
        return version("zart-django")
    except PackageNotFoundError:
        return "0.0.0"


SCHEMA_SETTINGS = {
    "TITLE": "zart-django API",
    "DESCRIPTION": "Durable executions, their events, and the approvals people decide.",
    "VERSION": _version(),
}


ERROR = {
    "type": "object",
    "description": "Why the request was refused: ``detail`` says it, or each refused field (or"
    " ``non_field_errors``) maps to its messages.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
"""The body of every error answer of the API."""

ERRORS = {
    400: "the request is malformed, or a value is refused (the body names it)",
    401: "no credentials, or wrong ones",
    403: "the user lacks the permission the body names (or the CSRF token is missing)",
    404: "no such execution, approval request or page",
    409: "the execution's state does not allow it (the body says why)",
    415: "the body is in a media type the API does not read",
}
"""Every error status the API answers, with what it means."""

COMMON_ERRORS = (400, 401, 403)
"""The errors any operation may answer."""


def errors(*codes: int) -> dict[int, Any]:
    """The ``responses`` entries of the error answers ``COMMON_ERRORS`` and ``codes``."""
    return {
        code: OpenApiResponse(ERROR, description=ERRORS[code])
        for code in sorted({*COMMON_ERRORS, *codes})
    }


class JsonSchema(AutoSchema):
    """drf-spectacular's ``AutoSchema`` documenting JSON request bodies only: the API reads forms
    too, but a form cannot carry every JSON value a body may hold, so a client generator is told
    JSON."""

    def map_parsers(self) -> list[str]:
        return ["application/json"]


def documented(**options: Any) -> Callable[[F], F]:
    """``extend_schema(**options)`` built on ``JsonSchema`` (drf-spectacular's) whatever the
    project's ``DEFAULT_SCHEMA_CLASS``: ``extend_schema`` derives from that setting unless the
    method names its schema, and DRF's own ``AutoSchema`` makes the schema view fail."""

    def decorate(method: F) -> F:
        kwargs = getattr(method, "kwargs", {})
        method.kwargs = {**kwargs, "schema": kwargs.get("schema") or JsonSchema}  # type: ignore[attr-defined]
        return extend_schema(**options)(method)

    return decorate


class ApiRoot(APIRootView):
    """The router's index of the API; left out of the schema (it is no operation of the API)."""

    schema = None


def build_schema(request: Request | None, routes: list[Any], mount: str) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` as mounted at ``mount`` (``"api/"``), for the API
    ``request`` that asks for it (None: for no one in particular)."""
    patterns = [path(mount, include((routes, "zart_api")))]
    with patched_settings(SCHEMA_SETTINGS):
        return SchemaGenerator(patterns=patterns).get_schema(request=request, public=True)


def mount_of(request: HttpRequest, tail: str) -> str:
    """The prefix the API is mounted at, from a request to its page ``tail`` (``"schema/"``)."""
    return request.path_info.removesuffix(tail).lstrip("/")


def schema_view(routes: list[Any]) -> Any:
    """The view answering the API's OpenAPI schema (YAML, or JSON with ``?format=json``)."""

    class ApiSchema(SpectacularAPIView):
        schema = None

        def _get_schema_response(self, request: Request) -> Response:
            return Response(build_schema(request, routes, mount_of(request, "schema/")))

    return ApiSchema.as_view()


def docs_view(routes: list[Any]) -> Any:
    """The view answering the docs page: Swagger UI served from static files, or the list of
    operations with what to install when ``drf_spectacular_sidecar`` is not installed."""

    def docs(request: HttpRequest) -> HttpResponse:
        schema_url = request.path.removesuffix("docs/") + "schema/?format=json"
        context: dict[str, Any] = {"schema_url": schema_url, "sidecar": apps.is_installed(SIDECAR)}
        if not context["sidecar"]:
            document = build_schema(None, routes, mount_of(request, "docs/"))
            context["operations"] = _operations(document)
        return render(request, "zart_django/api_docs.html", context)

    return docs


def _operations(document: dict[str, Any]) -> list[dict[str, str]]:
    """Each operation of ``document`` as ``method``, ``path`` and its ``summary``."""
    return [
        {
            "method": method.upper(),
            "path": route,
            "summary": (operation.get("description") or "").split("\n")[0],
        }
        for route, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
