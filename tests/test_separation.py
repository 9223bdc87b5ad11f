"""Approvals are an app on top of the engine: the core imports nothing of them, and a project
with only ``zart_django`` installed checks, migrates, runs a workflow with a worker and serves
its admin and REST API (real processes on a fresh SQLite database)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.passes import sqlite_pass_only

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "zart_django"
APPROVALS = "zart_django.approvals"


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_the_core_imports_nothing_of_the_approvals():
    core = [p for p in PACKAGE.rglob("*.py") if APPROVALS.replace(".", "/") not in p.as_posix()]
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in _imported(path)
            if name == APPROVALS or name.startswith(APPROVALS + ".")
        )
        for path in core
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_check_sees_relative_and_absolute_imports():
    """The check above would catch both spellings (it is not vacuous)."""
    admin = _imported(PACKAGE / "approvals" / "admin.py")
    assert {"zart_django.approvals.errors", "zart_django.admin.ExecutionAdmin"} <= admin
    assert "zart_django.approvals.models.ApprovalRequest" in _imported(
        PACKAGE / "approvals" / "cli.py"
    )


CORE_SCRIPT = """
import django, json
django.setup()
from django.contrib.auth.models import User
from django.test import Client
from zart_django import DurableScheduler
scheduler = DurableScheduler()
if sys.argv[1] == "start":
    scheduler.start("core-1", "core-greeting", "ada")
else:
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    pages = ["/admin/", "/admin/zart_django/execution/", "/admin/zart_django/execution/core-1/change/",
             "/api/executions/core-1/", "/api/schema/?format=json"]
    status = {page: client.get(page).status_code for page in pages}
    schema = client.get("/api/schema/?format=json").json()
    print(json.dumps({"output": scheduler.get("core-1").output, "status": status,
                      "paths": sorted(schema["paths"])}))
"""


@pytest.mark.timeout(120)
@sqlite_pass_only("the project without approvals runs on an SQLite file of its own")
def test_a_project_without_approvals_checks_migrates_runs_and_serves(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_core",
        "ZART_DB_NAME": str(tmp_path / "core.sqlite3"),
        "ZART_DB": "sqlite",
        "PYTHONPATH": str(ROOT),
    }

    def run(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("manage.py", "check", "--fail-level", "WARNING")
    migrated = run("manage.py", "migrate")
    assert "zart_django" in migrated and "zart_approvals" not in migrated
    script = "import sys\n" + CORE_SCRIPT
    run("-c", script, "start")
    run("manage.py", "run_zart_worker", "--once")
    result = json.loads(run("-c", script, "check").splitlines()[-1])
    assert result["output"] == "HELLO ADA"
    assert set(result["status"].values()) == {200}, result["status"]
    assert "/api/executions/" in result["paths"]
    assert not [p for p in result["paths"] if "approval" in p]
