"""What the API reads and writes: executions with their steps, and events."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from zart_django.codec import displayable, encode
from zart_django.errors import PayloadError
from zart_django.names import check_name
from zart_django.registry import default_registry


class StoredJSONField(serializers.JSONField):
    """JSON read from the database, shown even if an older version stored a lone surrogate in it
    (as U+FFFD): one such row must not turn a whole list into a 500."""

    def to_representation(self, value: Any) -> Any:
        return displayable(value)


class PayloadField(serializers.JSONField):
    """JSON the engine can store, checked by ``codec.encode`` (no NUL character, no lone
    surrogate, no deeper nesting than ``codec.MAX_DEPTH``), so a refusal names the field."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            if getattr(data, "is_json_string", False):
                data = json.loads(data)
            return encode(data, self.field_name)
        except PayloadError as exc:
            raise serializers.ValidationError(str(exc)) from None
        except (ValueError, RecursionError) as exc:
            raise serializers.ValidationError(f"not valid JSON: {exc}") from None


NAME_PATTERN = r"^(?!\.\.?$)[A-Za-z0-9_.:@+-]{1,200}$"
"""The name alphabet of ``zart_django.names`` as a pattern: execution ids and event names."""


@extend_schema_field({"type": "string", "pattern": NAME_PATTERN})
class NameField(serializers.CharField):
    """An execution id or event name, in the name alphabet of ``zart_django.names``."""

    def to_internal_value(self, data: Any) -> str:
        try:
            return check_name(data, self.field_name.replace("_", " "))
        except PayloadError as exc:
            raise serializers.ValidationError(str(exc)) from None


TEXT_PATTERN = "^[^\\u0000]*$"
"""Text without a NUL character (which DRF's ``CharField`` refuses, and PostgreSQL cannot store)."""


@extend_schema_field({"type": "string", "pattern": TEXT_PATTERN})
class TextField(serializers.CharField):
    """Free text, documented as refusing the NUL character, as ``CharField`` does."""


STEP_NAME_PATTERN = r"^[^\x00]{1,200}$"
"""What a step name may hold, as the field reads it: any text but NUL (which it refuses)."""


@extend_schema_field({"type": "string", "pattern": STEP_NAME_PATTERN})
class StepNameField(serializers.CharField):
    """A recorded step's name: 1 to 200 characters, no NUL, whitespace kept."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=1, max_length=200, trim_whitespace=False, **kwargs)


class TaskField(serializers.ChoiceField):
    """A task name, documented as one of the tasks registered in this process; an unknown one is
    left to the scheduler, whose refusal names the registered tasks."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=default_registry.names(), **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not data:
            self.fail("invalid_choice", input=data)
        return data


class StepSerializer(serializers.Serializer):
    """One step, wait or sleep of an execution (a ``StepInfo``)."""

    position = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField()
    result = StoredJSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ExecutionSerializer(serializers.Serializer):
    """An execution as the list shows it (an ``Execution`` row)."""

    id = serializers.CharField()
    task = serializers.CharField(source="task_name")
    status = serializers.CharField()
    input = StoredJSONField(allow_null=True)
    output = StoredJSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    waiting_on = serializers.CharField(allow_blank=True)
    started_by = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class RunSerializer(serializers.Serializer):
    """One run of an execution with the steps it recorded (a ``RunInfo``)."""

    number = serializers.IntegerField()
    began = serializers.CharField()
    from_step = serializers.CharField(allow_blank=True)
    input = StoredJSONField(allow_null=True)
    status = serializers.CharField()
    output = StoredJSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    steps = StepSerializer(many=True)


class FailureSerializer(serializers.Serializer):
    """What ended an execution whose task compensates (a ``Failure``)."""

    step = serializers.CharField(allow_blank=True)
    error = serializers.CharField()
    timed_out = serializers.BooleanField()


class CompensationSerializer(serializers.Serializer):
    """The run of the task's ``on_failure`` handler (a ``Compensation``)."""

    status = serializers.CharField()
    failure = FailureSerializer()
    result = StoredJSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class ExecutionDetailSerializer(ExecutionSerializer):
    """An execution with the steps of its current run (number ``run``), every run, and its
    compensation (null unless it failed and its task has an ``on_failure`` handler)."""

    task = serializers.CharField()
    steps = StepSerializer(many=True)
    run = serializers.IntegerField()
    runs = RunSerializer(many=True)
    compensation = CompensationSerializer(allow_null=True)
    unclaimed_seconds = serializers.SerializerMethodField(
        help_text="How long it has been due with no worker claiming it (null if not due):"
        " minutes mean no running worker has its task's code."
    )

    parent = serializers.CharField(
        allow_null=True,
        help_text="The id of the execution that started it with start_child (null for a"
        " top-level one).",
    )
    children = serializers.ListField(
        child=serializers.CharField(),
        help_text="The ids of the executions it started with start_child, oldest first.",
    )

    def get_unclaimed_seconds(self, info: Any) -> float | None:
        waited = info.unclaimed_for
        return None if waited is None else waited.total_seconds()


class StartSerializer(serializers.Serializer):
    """``POST /executions/``: start ``task`` as ``execution_id`` with ``input``."""

    task = TaskField()
    execution_id = NameField(trim_whitespace=False)
    input = PayloadField(required=False, allow_null=True, default=None)


class RerunSerializer(serializers.Serializer):
    """``POST /executions/{id}/rerun/``: the recorded step to run again from."""

    from_step = StepNameField()


class RestartSerializer(serializers.Serializer):
    """``POST /executions/{id}/restart/``: a new input (absent or null: the same input)."""

    input = PayloadField(required=False, allow_null=True, default=None)


class EventSerializer(serializers.Serializer):
    """``POST /executions/{id}/events/{name}/``: the event's payload (any JSON, default null)."""

    payload = PayloadField(required=False, allow_null=True, default=None)


class EventOfferedSerializer(serializers.Serializer):
    """The answer to an offered event: which execution and event it went to."""

    execution_id = serializers.CharField()
    event = serializers.CharField()
