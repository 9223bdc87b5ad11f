"""The package as a user gets it: the wheel and sdist that ``python -m build`` makes from this
checkout, and the README's "Install in your project" followed verbatim in a project fresh from
``django-admin startproject``, in a fresh virtualenv that has only what the README installs.

The README's steps are read from its section, never copied here: the bash line ``pip install
<requirement>`` installs the built wheel with the requirement's extras; a python block whose first
line is ``# settings.py`` or ``# urls.py`` is added at the end of that file of the project, any
other ``# <path>`` block is written to that path; the ``python manage.py`` lines run in order
(``run_zart_worker`` with ``--once``). The project is startproject's SQLite one, so the test runs
in the SQLite pass only. It needs the package index (pip installs Django and the rest from it):
without it, it is skipped, or fails under ZART_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.passes import sqlite_pass_only

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "mysite"
EXECUTION = "expense-1"

pytestmark = [
    pytest.mark.needs("package-index"),
    pytest.mark.timeout(300),
    sqlite_pass_only("the quickstart uses startproject's SQLite database"),
]


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Quickstart:
    requirement: str
    steps: list[tuple[str, str] | list[str]]  # (path, text) to write, or manage.py's arguments


def run(command: list[str], cwd: Path, timeout: float, **env: str) -> str:
    """Run ``command``; return its output, or fail the test with it."""
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def readme_quickstart() -> Quickstart:
    """The README's "Install in your project" section: the pip requirement, then in reading
    order the files to write or extend and the ``manage.py`` commands to run."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Install in your project\n", 1)[1].split("\n## ", 1)[0]
    requirement, steps = "", []
    for language, body in re.findall(r"^```(\w+)\n(.*?)^```$", section, re.M | re.S):
        if language == "python":
            target, _, code = body.partition("\n")
            assert target.startswith("# "), f"a python block names its file first: {body!r}"
            steps.append((target[2:].strip(), code))
            continue
        for line in body.splitlines():
            argv = shlex.split(line, comments=True)
            if argv[:2] == ["pip", "install"]:
                requirement = argv[2]
            elif argv[:2] == ["python", "manage.py"]:
                steps.append(argv[2:] + (["--once"] if "run_zart_worker" in argv else []))
            elif argv:
                pytest.fail(f"the README's quickstart has a line this test cannot run: {line}")
    assert requirement.startswith("zart-django"), "the quickstart installs zart-django"
    return Quickstart(requirement, steps)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist, and the wheel ``python -m build`` makes from it (not from the checkout)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], ROOT, 180)
    return Dists(wheel=next(out.glob("*.whl")), sdist=next(out.glob("*.tar.gz")))


def test_wheel_holds_only_the_zart_django_package(dists: Dists) -> None:
    names = zipfile.ZipFile(dists.wheel).namelist()
    info = dists.wheel.name.split("-py3")[0] + ".dist-info/"
    assert [n for n in names if not n.startswith(("zart_django/", info))] == []
    for expected in (
        "zart_django/py.typed",
        "zart_django/templates/admin/zart_django/execution/change_form.html",
        "zart_django/approvals/templates/zart_approvals/base.html",
        "zart_django/migrations/0001_initial.py",
        "zart_django/approvals/migrations/0002_immutable_audit.py",
        "zart_django/approvals/templatetags/zart_approvals.py",
        "zart_django/approvals/locale/de/LC_MESSAGES/django.po",
        "zart_django/approvals/locale/de/LC_MESSAGES/django.mo",
        f"{info}licenses/LICENSE",
    ):
        assert expected in names


def test_sdist_holds_every_file_git_tracks(dists: Dists) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare the sdist with")
    tracked = run(["git", "ls-files"], ROOT, 30).split()
    with tarfile.open(dists.sdist) as sdist:
        packed = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = sorted(set(tracked) - packed)
    assert missing == [], f"add these to MANIFEST.in: {missing}"


def test_the_unpacked_sdist_runs_the_tests(dists: Dists, tmp_path: Path) -> None:
    with tarfile.open(dists.sdist) as sdist:
        sdist.extractall(tmp_path, filter="data")
    tree = next(tmp_path.iterdir())
    output = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_checks.py"],
        tree,
        120,
        ZART_DB="sqlite",
    )
    assert " passed" in output and "failed" not in output


@pytest.fixture(scope="module")
def fresh_python(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtualenv with only the wheel and what the README's ``pip install`` line asks for."""
    requirement = readme_quickstart().requirement
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(venv)], venv, 60)
    python = venv / "bin" / "python"
    extras = requirement.removeprefix("zart-django")
    run([str(python), "-m", "pip", "install", "-q", f"{dists.wheel}{extras}"], venv, 180)
    yield python


def test_readme_quickstart_works_verbatim_in_a_fresh_project(
    fresh_python: Path, tmp_path: Path
) -> None:
    quickstart = readme_quickstart()
    project = tmp_path / "project"
    project.mkdir()
    run(
        [str(fresh_python.parent / "django-admin"), "startproject", PROJECT, str(project)],
        project,
        60,
    )
    manage = [str(fresh_python), "manage.py"]
    written = set()
    for step in quickstart.steps:
        if isinstance(step, tuple):
            written.add(_apply(project, *step))
        else:
            run(manage + step, project, 120, **_settings())
    assert {f"{PROJECT}/settings.py", f"{PROJECT}/urls.py"} <= written

    output = run(manage + ["check", "--fail-level", "WARNING"], project, 60, **_settings())
    assert "no issues" in output
    run(
        manage + ["run_zart_worker", "--once"], project, 120, **_settings()
    )  # parks it on the approval
    seen = json.loads(run([str(fresh_python), "-c", DRIVER], project, 120, **_settings()))
    assert str(fresh_python.parent.parent) in seen["installed_at"]  # the wheel, not this checkout
    assert seen["inbox_anonymous"] == [302, "/approvals/login/?next=/approvals/"]
    assert seen["login_page"] == 200
    assert seen["api_root"] == 200
    assert seen["api_pending"] == [EXECUTION]
    assert seen["decide"] == 201
    assert seen["inbox_logged_in"] == 200
    assert seen["unimportable"] == []
    run(manage + ["run_zart_worker", "--once"], project, 120, **_settings())
    info = run([str(fresh_python), "-c", RESULT], project, 60, **_settings())
    assert json.loads(info) == {"status": "completed", "output": "paid 120"}


def _settings() -> dict[str, str]:
    """The fresh project's settings (pytest's own are in the environment this test inherits)."""
    return {"DJANGO_SETTINGS_MODULE": f"{PROJECT}.settings"}


def _apply(project: Path, path: str, text: str) -> str:
    """Add ``text`` at the end of the project's settings or urls, or write it to ``path``."""
    target = project / PROJECT / path if path in ("settings.py", "urls.py") else project / path
    if target.name in ("settings.py", "urls.py") and target.exists():
        target.write_text(target.read_text() + "\n" + text)
    else:
        target.write_text(text)
    return str(target.relative_to(project))


DRIVER = f"""
import importlib, json, pkgutil
import django
django.setup()
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token
import zart_django

seen = {{"installed_at": zart_django.__file__}}
anonymous = Client(HTTP_HOST="localhost")
response = anonymous.get("/approvals/")
seen["inbox_anonymous"] = [response.status_code, response.headers.get("Location")]
seen["login_page"] = anonymous.get(response.headers["Location"]).status_code

alice = User.objects.create_user("alice", password="alice-approves")
alice.user_permissions.add(Permission.objects.get(codename="decide_approval"))
token = Token.objects.create(user=alice)
api = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Token {{token.key}}")
seen["api_root"] = api.get("/api/").status_code
pending = api.get("/api/approvals/").json()["results"]
seen["api_pending"] = [row["execution_id"] for row in pending]
seen["decide"] = api.post(
    "/api/approvals/{EXECUTION}/decide/", {{"approved": True}}, content_type="application/json"
).status_code
browser = Client(HTTP_HOST="localhost")
browser.login(username="alice", password="alice-approves")
seen["inbox_logged_in"] = browser.get("/approvals/").status_code

# Nothing imports an extra at module top: every module loads with the core install alone,
# but the metrics collector, which only the metrics view imports, once prometheus_client is there.
seen["unimportable"] = []
for module in pkgutil.walk_packages(zart_django.__path__, "zart_django."):
    if module.name == "zart_django.metrics.database":
        continue
    try:
        importlib.import_module(module.name)
    except ImportError as exc:
        seen["unimportable"].append(f"{{module.name}}: {{exc}}")
print(json.dumps(seen))
"""

RESULT = f"""
import json
import django
django.setup()
from zart_django import DurableScheduler
info = DurableScheduler().get("{EXECUTION}")
print(json.dumps({{"status": info.status, "output": info.output}}))
"""
