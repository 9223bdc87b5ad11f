"""The REST API (Django REST framework): executions, events and approvals.

Include it with ``path("api/", include("zart_django.api.urls"))``. Every view requires an
authenticated user; it calls the same functions as the admin and the inbox
(``DurableScheduler.start/offer_event/cancel/retry/rerun/restart`` and
``zart_django.approvals.decide``).
"""
