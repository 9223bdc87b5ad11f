"""The REST API (Django REST framework): executions and events, and what installed apps add.

Include it with ``path("api/", include("zart_django.api.urls"))``. Every view requires an
authenticated user; it calls the same functions as the admin (``DurableScheduler.start/
offer_event/cancel/retry/rerun/restart``). With ``zart_django.approvals`` installed it also serves
``approvals/`` (see ``zart_django.api.extensions``).
"""
