"""The trigger files under workflow/ (read by Terraform and here) and pipelines.aws.triggers.

The S3 rule and its input transformer run in the moto server's EventBridge: a rule with the
rendered pattern on a test bus, its target an SQS queue with the rendered InputTransformer
(moto delivers to SQS targets synchronously inside put_events), so the queue holds exactly what
the Lambda target would receive. In AWS the target is the Lambda (pipelines.aws.handler.handler,
task "trigger"); moto cannot invoke our image, so `trigger_task` is called here in-process with
each message (bridge: SQS message -> trigger_task), against a real jobs table and a fake starter.
The Scheduler's context attributes (<aws.scheduler.*>) are substituted in Python: moto has no
schedule runner.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from pipelines.engine.errors import ConfigError, RunError, TransientRunError
from pipelines.aws.jobs import FAILED, QUEUED, RUNNING, JobStore, create_table
from pipelines.aws.triggers import (
    PLACEHOLDERS,
    placeholders_in,
    render_trigger,
    s3_drop_job_id,
    schedule_job_id,
    trigger_job_id,
    trigger_path,
    trigger_task,
)

PIPELINE = "send_audience_to_kafka"
RULE_VALUES = {"bucket": "audience-drops", "prefix": "drops/", "suffix": ".csv.gz"}
ETAG = "4af981f98d22a0b9979da24b259e5e42-12"
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def s3_event(bucket: str = "audience-drops", key: str = "drops/2026-11-22.csv.gz", etag: str = ETAG, detail_type: str = "Object Created", version: str | None = None) -> dict[str, Any]:
    """An S3 event as EventBridge delivers it (put_events entry form), fields as AWS documents them."""
    obj: dict[str, Any] = {"key": key, "size": 198524144, "etag": etag, "sequencer": "0064D3901D00059242"}
    if version:
        obj["version-id"] = version
    detail = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": obj,
        "request-id": "XRRTKJXSZQCWNQR1",
        "requester": "123456789012",
        "source-ip-address": "10.0.0.1",
        "reason": "PutObject",
    }
    return {"Source": "aws.s3", "DetailType": detail_type, "Resources": [f"arn:aws:s3:::{bucket}"], "Detail": json.dumps(detail)}


# ----------------------------------------------------------------------------- the files


@pytest.mark.parametrize("name", sorted(PLACEHOLDERS))
def test_files_are_json_with_exactly_the_documented_placeholders(name: str) -> None:
    text = trigger_path(name).read_text(encoding="utf-8")
    json.loads(text)  # valid JSON as it is: the placeholders sit inside strings
    assert placeholders_in(text) == set(PLACEHOLDERS[name])
    assert "%{" not in text  # a templatefile directive


def test_render_is_strict() -> None:
    with pytest.raises(ValueError, match="no value for suffix"):
        render_trigger("s3_drop_rule", {"bucket": "b", "prefix": "p/"})
    with pytest.raises(ValueError, match="no placeholder for extra"):
        render_trigger("s3_drop_rule", {**RULE_VALUES, "extra": "x"})
    with pytest.raises(ValueError, match="double quote"):
        render_trigger("s3_drop_rule", {**RULE_VALUES, "prefix": 'a"b'})
    assert render_trigger("s3_drop_rule", RULE_VALUES)["detail"] == {
        "bucket": {"name": ["audience-drops"]},
        "object": {"key": [{"wildcard": "drops/*.csv.gz"}]},
    }


# ----------------------------------------------------------------------------- the S3 rule in moto


class Rule:
    """The rendered S3 rule on a test bus with an SQS target carrying the rendered InputTransformer."""

    def __init__(self, values: dict[str, str]) -> None:
        import boto3

        self.events, self.sqs = boto3.client("events"), boto3.client("sqs")
        name = f"trig-{uuid.uuid4().hex[:10]}"
        self.bus = name
        self.events.create_event_bus(Name=name)
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events.put_rule(Name="s3-drop", EventBusName=name, EventPattern=json.dumps(render_trigger("s3_drop_rule", values)))
        self.events.put_targets(
            Rule="s3-drop",
            EventBusName=name,
            Targets=[{"Id": "importer", "Arn": queue_arn, "InputTransformer": render_trigger("s3_drop_input", {"pipeline": PIPELINE})}],
        )

    def put(self, *entries: dict[str, Any]) -> None:
        response = self.events.put_events(Entries=[{**e, "EventBusName": self.bus} for e in entries])
        assert response["FailedEntryCount"] == 0, response

    def delivered(self) -> list[dict[str, Any]]:
        bodies = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def expected_input(bucket: str, key: str, etag: str = ETAG) -> dict[str, Any]:
    return {
        "task": "trigger",
        "pipeline": PIPELINE,
        "params": {"S3_BUCKET": bucket, "S3_KEY": key},
        "trigger": {
            "type": "s3",
            "bucket": bucket,
            "object": {"key": key, "size": 198524144, "etag": etag, "sequencer": "0064D3901D00059242"},
        },
    }


def test_s3_rule_matches_drops_and_transforms_them(stack: object) -> None:
    rule = Rule(RULE_VALUES)
    rule.put(s3_event(key="drops/2026-11-22.csv.gz"))
    assert rule.delivered() == [expected_input("audience-drops", "drops/2026-11-22.csv.gz")]

    rule.put(
        s3_event(bucket="other-bucket"),  # another bucket
        s3_event(key="other/2026-11-22.csv.gz"),  # outside the prefix
        s3_event(key="archive/drops/2026-11-22.csv.gz"),  # the prefix, but not at the start
        s3_event(key="drops/2026-11-22.csv"),  # another suffix
        s3_event(key="drops/2026-11-22.csv.gz.tmp"),  # the suffix, but not at the end
        s3_event(detail_type="Object Deleted"),
        {**s3_event(), "Source": "not.s3"},
    )
    assert rule.delivered() == []

    rule.put(s3_event(key="drops/sub/folder/x.csv.gz"))  # deeper under the prefix is fine
    assert [m["params"]["S3_KEY"] for m in rule.delivered()] == ["drops/sub/folder/x.csv.gz"]


def test_s3_rule_without_suffix_or_prefix(stack: object) -> None:
    rule = Rule({"bucket": "audience-drops", "prefix": "", "suffix": ""})
    rule.put(s3_event(key="anything.txt"), s3_event(key="drops/a.csv.gz"), s3_event(bucket="other"))
    assert [m["params"]["S3_KEY"] for m in rule.delivered()] == ["anything.txt", "drops/a.csv.gz"]


def test_the_same_event_delivered_twice_imports_once(stack: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridge: each SQS message (what the Lambda target would get) -> trigger_task in-process."""
    store, start = jobs_table(monkeypatch), FakeStart()
    rule = Rule(RULE_VALUES)
    rule.put(s3_event(), s3_event())  # the same event twice
    rule.put(s3_event(etag="0123456789abcdef0123456789abcdef"))  # the key written again, other content
    messages = rule.delivered()
    assert len(messages) == 3
    answers = [trigger_task(m, store=store, start_execution=start) for m in messages]
    first_id = s3_drop_job_id("audience-drops", "drops/2026-11-22.csv.gz", ETAG, PIPELINE)
    assert answers[0] == {"job_id": first_id, "status": QUEUED, "duplicate": False}
    assert answers[1]["job_id"] == first_id and answers[1]["duplicate"] is True
    assert answers[2]["job_id"] != first_id and answers[2]["duplicate"] is False
    assert start.started == [first_id, answers[2]["job_id"]]  # one execution per distinct drop
    assert start.calls[0][1] == {"job_id": first_id, "pipeline": PIPELINE, "params": {"S3_BUCKET": "audience-drops", "S3_KEY": "drops/2026-11-22.csv.gz"}}
    job = store.get(first_id)
    assert job is not None and job.status == QUEUED and job.params == {"S3_BUCKET": "audience-drops", "S3_KEY": "drops/2026-11-22.csv.gz"}


# ----------------------------------------------------------------------------- job ids


def test_s3_drop_job_id_is_stable_and_distinct() -> None:
    base = s3_drop_job_id("b", "drops/a.csv", ETAG, PIPELINE)
    assert base == s3_drop_job_id("b", "drops/a.csv", ETAG, PIPELINE)
    assert base == s3_drop_job_id("b", "drops/a.csv", f'"{ETAG}"', PIPELINE)  # HeadObject's quoted ETag
    assert EXECUTION_NAME.match(base) and base.startswith("s3-") and len(base) <= 80
    others = {
        s3_drop_job_id("b", "drops/b.csv", ETAG, PIPELINE),
        s3_drop_job_id("c", "drops/a.csv", ETAG, PIPELINE),
        s3_drop_job_id("b", "drops/a.csv", "0123456789abcdef0123456789abcdef", PIPELINE),
        s3_drop_job_id("b", "drops/a.csv", ETAG, "another_pipeline"),
        s3_drop_job_id("b", "drops/a.csv", ETAG),
        s3_drop_job_id("b/drops", "a.csv", ETAG, PIPELINE),  # no separator ambiguity
    }
    assert base not in others and len(others) == 6
    assert EXECUTION_NAME.match(s3_drop_job_id("b", "ünïcödé key with spaces/" + "x" * 2000, ETAG, PIPELINE))
    with pytest.raises(ConfigError, match="etag or version"):
        s3_drop_job_id("b", "k", "")


def test_trigger_job_id_prefers_the_version_id() -> None:
    obj = {"key": "drops/a.csv", "etag": ETAG}
    by_etag = trigger_job_id(PIPELINE, {"type": "s3", "bucket": "b", "object": obj})
    by_version = trigger_job_id(PIPELINE, {"type": "s3", "bucket": "b", "object": {**obj, "version-id": "uhggCJ2_B6gU2JaX"}})
    assert by_etag == s3_drop_job_id("b", "drops/a.csv", ETAG, PIPELINE)
    assert by_version == s3_drop_job_id("b", "drops/a.csv", "uhggCJ2_B6gU2JaX", PIPELINE) != by_etag
    with pytest.raises(ConfigError, match="unknown trigger"):
        trigger_job_id(PIPELINE, {"type": "ftp"})


def test_schedule_input_and_job_id() -> None:
    rendered = render_trigger("schedule_input", {"export_pipeline": "export_audience", "export_bucket": "audiences-eu"})
    # what EventBridge Scheduler does with its context attributes when it invokes the target
    text = (
        json.dumps(rendered)
        .replace("<aws.scheduler.scheduled-time>", "2026-11-22T03:00:00Z")
        .replace("<aws.scheduler.schedule-arn>", "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/nightly-export")
    )
    event = json.loads(text)
    assert event["task"] == "trigger" and event["pipeline"] == "export_audience"
    assert event["params"] == {"SCHEDULED_TIME": "2026-11-22T03:00:00Z", "EXPORT_BUCKET": "audiences-eu"}
    assert trigger_job_id(event["pipeline"], event["trigger"]) == "sched-nightly-export-20261122T030000Z"
    other_group = json.loads(text.replace("schedule/default/", "schedule/exports/"))
    assert trigger_job_id(event["pipeline"], other_group["trigger"]) == "sched-exports-nightly-export-20261122T030000Z"
    long_name = schedule_job_id("n" * 100, "2026-11-22T03:00:00Z")
    assert EXECUTION_NAME.match(long_name) and long_name != schedule_job_id("n" * 99, "2026-11-22T03:00:00Z")
    assert EXECUTION_NAME.match(schedule_job_id("nightly export (EU)", "2026-11-22T03:00:00Z"))


# ----------------------------------------------------------------------------- trigger_task


class FakeStart:
    """start_execution recording its calls; raises the given errors first, then behaves like Step
    Functions with execution names: a name started before is refused (ExecutionAlreadyExists)."""

    def __init__(self, *errors: Exception | None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.started: list[str] = []
        self.errors = list(errors)

    def __call__(self, job_id: str, execution_input: dict[str, Any]) -> str:
        self.calls.append((job_id, execution_input))
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        if job_id in self.started:
            raise client_error("ExecutionAlreadyExists")
        self.started.append(job_id)
        return f"arn:aws:states:us-east-1:123456789012:execution:pipelines:{job_id}"


def jobs_table(monkeypatch: pytest.MonkeyPatch) -> JobStore:
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    store = JobStore(name)
    create_table(store.dynamodb, name)
    return store


def client_error(code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "StartExecution")


def drop_event(key: str) -> dict[str, Any]:
    return {
        "task": "trigger",
        "pipeline": PIPELINE,
        "params": {"S3_BUCKET": "b", "S3_KEY": key},
        "trigger": {"type": "s3", "bucket": "b", "object": {"key": key, "etag": ETAG}},
    }


def test_trigger_task_retries_a_transient_start_and_skips_started_jobs(stack: object, monkeypatch: pytest.MonkeyPatch) -> None:
    store = jobs_table(monkeypatch)
    event = drop_event(f"drops/{uuid.uuid4().hex}.csv")
    start = FakeStart(client_error("ThrottlingException"))
    with pytest.raises(TransientRunError, match="stays QUEUED"):
        trigger_task(event, store=store, start_execution=start)
    job_id = start.calls[0][0]
    assert store.get(job_id).status == QUEUED
    # the redelivery finds the QUEUED job and starts it
    assert trigger_task(event, store=store, start_execution=start) == {"job_id": job_id, "status": QUEUED, "duplicate": False}
    assert len(start.calls) == 2 and start.calls[1] == start.calls[0]
    # the job is still QUEUED, but an execution of that name exists (started above): nothing more to do
    assert trigger_task(event, store=store, start_execution=start)["duplicate"] is True
    assert start.started == [job_id]
    # once the workflow moved the job on, a delivery does not even try
    store.transition(job_id, RUNNING)
    assert trigger_task(event, store=store, start_execution=start) == {"job_id": job_id, "status": RUNNING, "duplicate": True}
    assert len(start.calls) == 3


def test_trigger_task_marks_the_job_failed_when_the_start_is_refused(stack: object, monkeypatch: pytest.MonkeyPatch) -> None:
    store = jobs_table(monkeypatch)
    start = FakeStart(client_error("StateMachineDoesNotExist"))
    with pytest.raises(RunError, match="StateMachineDoesNotExist"):
        trigger_task(drop_event("drops/x.csv"), store=store, start_execution=start)
    job = store.get(start.calls[0][0])
    assert job.status == FAILED and job.error["Error"] == "StartExecutionFailed" and "StateMachineDoesNotExist" in job.error["Cause"]


def test_trigger_task_rejects_unknown_pipelines(stack: object, monkeypatch: pytest.MonkeyPatch) -> None:
    store, start = jobs_table(monkeypatch), FakeStart()
    with pytest.raises(ConfigError, match="no pipeline 'nope'"):
        trigger_task({**drop_event("drops/x.csv"), "pipeline": "nope"}, store=store, start_execution=start)
    assert start.calls == [] and store.list() == []
