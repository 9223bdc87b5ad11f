"""``manage.py zart``: each subcommand run for real, its tables, its JSON and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.approval_helpers import start_parked
from tests.conftest import ROOT, subprocess_env
from tests.test_runs import starts
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRecord
from zart_django.models import Execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


def zart(*args: str) -> str:
    """Run ``manage.py zart *args`` and return what it printed."""
    out = StringIO()
    call_command("zart", *args, stdout=out)
    return out.getvalue()


def zart_json(*args: str) -> object:
    return json.loads(zart(*args, "--json"))


def refused(*args: str) -> tuple[int, str]:
    """Run a subcommand that must fail; return its exit code and message."""
    with pytest.raises(CommandError) as failure:
        zart(*args)
    return failure.value.returncode, str(failure.value)


class TestList:
    def test_a_table_for_people_and_json_for_scripts_with_filters(self, scheduler, job):
        scheduler.start("l-1", "no-input")
        scheduler.start("l-2", "three-steps", job)
        run_until_idle()
        text = zart("list")
        assert text.splitlines()[0].split() == [
            "ID",
            "TASK",
            "STATUS",
            "WAITING",
            "ON",
            "CREATED",
            "FINISHED",
            "UNCLAIMED",
            "FOR",
        ]
        assert "l-2  three-steps  waiting    go" in text
        assert [row["id"] for row in zart_json("list")] == ["l-2", "l-1"]
        assert [row["id"] for row in zart_json("list", "--status", "completed")] == ["l-1"]
        assert [row["id"] for row in zart_json("list", "--task", "three-steps")] == ["l-2"]
        assert len(zart_json("list", "--limit", "1")) == 1
        assert zart("list", "--task", "none-such") == "No executions.\n"

    def test_an_execution_no_worker_claims_says_for_how_long(self, scheduler):
        """A rolling deploy that dropped a task: its executions stay pending, and show it."""
        scheduler.start("l-3", "no-input")
        assert zart_json("list")[0]["unclaimed_for"] is None
        advance_time("12m")
        assert zart_json("list")[0]["unclaimed_for"] == "12m"
        assert "12m" in zart("list")

    def test_bad_filters_are_usage_errors(self):
        for args in (("--status", "sleeping"), ("--limit", "0")):
            code, message = refused("list", *args)
            assert code == 1 and message.startswith("Error: argument")  # argparse, in-process


class TestShow:
    def test_steps_events_and_the_decision(self, manager):
        start_parked("s-1")
        decide("s-1", manager, approved=False, comment="not now")
        run_until_idle()
        shown = zart_json("show", "s-1")
        assert shown["status"] == "completed"
        assert [s["name"] for s in shown["steps"]] == [
            "validate-request",
            "approval-opened",
            "approval:manager-approval",
        ]
        assert [e["name"] for e in shown["events"]] == ["approval:manager-approval"]
        (approval,) = shown["approvals"]
        assert approval["outcome"] == "rejected"
        assert approval["decision"]["reviewer"] == "alice"
        assert approval["decision"]["comment"] == "not now"
        text = zart("show", "s-1")
        assert "Steps:" in text and "Events:" in text and "Approvals:" in text
        assert "alice (code," in text and "not now" in text

    def test_an_id_reused_after_a_purge_shows_only_its_own_decision(self, scheduler, manager):
        start_parked("s-2")
        decide("s-2", manager, approved=True, comment="first life")
        run_until_idle()
        advance_time("2d")
        zart("purge", "--older-than", "1d")
        start_parked("s-2")
        (approval,) = zart_json("show", "s-2")["approvals"]
        assert (approval["outcome"], approval["decision"]) == ("pending", None)
        assert "first life" not in zart("show", "s-2")
        assert ApprovalRecord.objects.filter(execution_id="s-2").count() == 1

    def test_unknown_and_unstorable_ids(self):
        assert refused("show", "nope") == (3, "no execution with id 'nope'")
        assert refused("show", "a\x00b")[0] == 2


class TestStartOfferCancel:
    def test_start_offer_and_the_execution_resumes(self, scheduler, job):
        started = zart_json("start", "three-steps", "c-1", json.dumps({"log": job.log}))
        assert (started["id"], started["status"]) == ("c-1", "pending")
        assert zart("start", "three-steps", "c-1", json.dumps({"log": job.log})).startswith("c-1")
        run_until_idle()
        zart("offer", "c-1", "go", '{"approved": true, "reviewer": "ops"}')
        run_until_idle()
        assert scheduler.wait_completion("c-1", timeout=1)["approved"] is True

    @pytest.mark.parametrize(
        ("args", "code", "says"),
        [
            (("start", "nope", "x"), 3, "unknown task 'nope'"),
            (("start", "no-input", "a/b"), 2, "has '/'"),
            (("start", "three-steps", "x", "{bad"), 2, "the input is not valid JSON"),
            (("start", "three-steps", "x", "NaN"), 2, "NaN is not JSON"),
            (("start", "three-steps", "x", '{"log": 5}'), 2, "input"),
            (("offer", "nope", "go"), 3, "no execution"),
            (("offer", "c-2", "go", "[1,"), 2, "the payload is not valid JSON"),
            (("offer", "c-2", "bad name"), 2, "event name"),
            (("offer", "c-2", "approval:manager-approval"), 1, "decide"),
            (("cancel", "nope"), 3, "no execution"),
        ],
    )
    def test_errors_name_the_problem_and_store_nothing(self, scheduler, args, code, says):
        scheduler.start("c-2", "no-input")
        before = list(Execution.objects.values())
        returncode, message = refused(*args)
        assert returncode == code and says in message
        assert list(Execution.objects.values()) == before

    def test_cancel_then_refusals_for_a_finished_execution(self, scheduler):
        scheduler.start("c-3", "no-input")
        assert zart("cancel", "c-3") == "c-3: cancelled\n"
        assert refused("cancel", "c-3") == (
            1,
            "execution 'c-3' has already finished (status cancelled)",
        )
        assert refused("offer", "c-3", "go")[0] == 1
        assert refused("start", "three-steps", "c-3", '{"log": "x"}')[0] == 1


class TestPurgeAndStats:
    def test_purge_dry_run_status_and_the_retention_setting(self, scheduler, settings, manager):
        start_parked("p-1")
        decide("p-1", manager, approved=True)
        scheduler.start("p-2", "no-input")
        scheduler.start("p-3", "no-input")
        scheduler.cancel("p-3")
        run_until_idle()
        advance_time("3d")
        dry = zart_json("purge", "--older-than", "2d", "--dry-run")
        assert dry == {
            "dry_run": True,
            "deleted": {"executions": 3, "step_results": 4, "events": 1, "approval_requests": 1},
        }
        assert Execution.objects.count() == 3
        assert zart("purge", "--older-than", "2d", "--status", "cancelled") == (
            "deleted executions: 1 (approval decisions are kept)\n"
        )
        assert refused("purge")[0] == 2
        assert refused("purge", "--older-than", "soon")[0] == 2
        settings.ZART = {**settings.ZART, "RETENTION": "1d"}
        assert zart_json("purge")["deleted"]["executions"] == 2
        assert not Execution.objects.exists() and ApprovalRecord.objects.count() == 1

    def test_stats_counts_and_the_oldest_due_and_parked(self, scheduler, job):
        scheduler.start("st-1", "three-steps", job)
        run_until_idle()
        scheduler.start("st-2", "no-input")
        scheduler.start("st-3", "no-input")
        advance_time("2h")
        stats = zart_json("stats")
        assert stats["by_status"] == {"pending": 2, "waiting": 1}
        assert stats["by_task"] == {"no-input": 2, "three-steps": 1}
        assert stats["oldest_due"]["id"] == "st-2" and stats["oldest_due"]["late_seconds"] > 7000
        assert stats["oldest_parked"]["id"] == "st-1"
        text = zart("stats")
        assert "pending  no-input     2" in text
        assert "Oldest due:    st-2, due 2h ago" in text
        assert "Oldest parked: st-1, waiting on go for 2h" in text


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_exit_codes_from_a_shell(scheduler):
    """The documented exit codes, from a real ``manage.py zart`` process: 0 done, 1 refused,
    2 usage, 3 not found; errors on stderr, JSON on stdout."""
    scheduler.start("sh-1", "no-input")
    scheduler.cancel("sh-1")
    env = subprocess_env()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "zart", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = run("list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == "sh-1"
    assert run("cancel", "sh-1").returncode == 1
    for usage in (("list", "--status", "zzz"), ("start", "no-input", "x", "{"), ()):
        assert run(*usage).returncode == 2, usage
    missing = run("show", "nope")
    assert missing.returncode == 3 and "no execution with id 'nope'" in missing.stderr


class TestRuns:
    def test_retry_rerun_and_restart_begin_new_runs_and_refuse_clearly(self, scheduler, job):
        scheduler.start("cr-1", "breaks", replace(job, fail_times=1))
        run_until_idle()
        assert zart("retry", "cr-1") == "cr-1: run 2, pending\n"
        run_until_idle()
        assert zart_json("rerun", "cr-1", "--from", "second")["status"] == "pending"
        run_until_idle()
        assert zart("restart", "cr-1") == "cr-1: run 4, pending\n"
        run_until_idle()
        assert [r.began for r in scheduler.get("cr-1").runs] == [
            "start",
            "retry",
            "rerun",
            "restart",
        ]
        assert starts(job) == {"first": 2, "fragile": 3, "second": 3}
        code, message = refused("retry", "cr-1")
        assert code == 1 and "cannot be retried: it is completed" in message
        code, message = refused("rerun", "cr-1", "--from", "nope")
        assert code == 3 and "no recorded step" in message
        assert refused("restart", "cr-1", "{not json")[0] == 2
        assert refused("retry", "nobody")[0] == 3
        assert scheduler.get("cr-1").run == 4
