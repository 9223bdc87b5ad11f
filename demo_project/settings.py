"""Settings of the demo project: SQLite by default, PostgreSQL with ZART_DB=postgres."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular_sidecar",
    "zart_django",
    "zart_django.approvals",
    "demo_project.approval",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the inbox in the browser's language (en, de)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo_project.wsgi.application"

SQLITE = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": os.environ.get("ZART_DB_NAME", BASE_DIR / "db.sqlite3"),
    "OPTIONS": {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    },
}
POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": os.environ.get("ZART_DB_NAME", "zart_demo"),
    "USER": os.environ.get("PGUSER", "postgres"),
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
}
DATABASES = {"default": POSTGRES if os.environ.get("ZART_DB") == "postgres" else SQLITE}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "zart_approvals:login"
LOGIN_REDIRECT_URL = "/approvals/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}

ZART = {
    "POLL_INTERVAL": 0.2,
    "WORKFLOW_MODULES": [
        "demo_project.approval.orders",  # the order saga (compensation)
        "demo_project.approval.scheduled",  # the nightly digest (recurring)
        "demo_project.approval.teams",  # the team onboarding (child executions)
        "demo_project.approval.quotes",  # the quote (parallel steps)
        "demo_project.approval.rates",  # the invoice conversion (async def)
    ],
    "APPROVALS_BASE_URL": "http://127.0.0.1:8000",
}
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"  # approval mails to the console
