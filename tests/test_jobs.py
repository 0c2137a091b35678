"""Job status in DynamoDB (conditional transitions) and its EventBridge events, against the moto server.

Each test gets its own table and its own event bus; a rule on the bus matching
``{"source": ["audience-pipelines"]}`` sends the events to an SQS queue (moto delivers to SQS
targets synchronously inside put_events), which the test reads to check every event's detail.
The concurrency test alone runs on a second, in-process moto that serializes requests (the
`serialized_moto` bridge): the moto server's conditional writes are not atomic under concurrency.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pipelines.engine.errors import ConfigError, RunError
from pipelines.aws.jobs import (
    DETAIL_TYPE,
    FAILED,
    MAX_CAUSE,
    QUEUED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    JobExists,
    JobStore,
    TransitionRejected,
    create_table,
)

PARAMS = {"S3_BUCKET": "audiences", "S3_KEY": "drops/a.csv.gz"}
ALLOWED = {(QUEUED, RUNNING), (RUNNING, SUCCEEDED), (RUNNING, FAILED), (QUEUED, FAILED)}
# how to bring a new job to each status
PATHS = {QUEUED: [], RUNNING: [RUNNING], SUCCEEDED: [RUNNING, SUCCEEDED], FAILED: [RUNNING, FAILED]}


@dataclass
class Env:
    store: JobStore
    queue_url: str
    sqs: Any

    def events(self) -> list[dict[str, Any]]:
        """The details of the events delivered since the last call (each checked for source and type)."""
        details = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return details
            for message in messages:
                event = json.loads(message["Body"])
                assert event["source"] == "audience-pipelines"
                assert event["detail-type"] == DETAIL_TYPE
                details.append(event["detail"])
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def raw(self, job_id: str) -> dict[str, Any] | None:
        return self.store.dynamodb.get_item(TableName=self.store.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get("Item")

    def new_job(self, status: str = QUEUED) -> str:
        job_id = f"job-{uuid.uuid4().hex[:8]}"
        self.store.create(job_id, "send_audience_to_kafka", PARAMS)
        for step in PATHS[status]:
            self.store.transition(job_id, step, **({"error": "boom"} if step == FAILED else {}))
        self.events()
        return job_id


def make_env() -> Env:
    """A table, a bus, a rule and a queue on the moto server AWS_ENDPOINT_URL names."""
    import boto3

    name = f"jobs-{uuid.uuid4().hex[:10]}"
    store = JobStore(name, event_bus=f"bus-{name}")
    create_table(store.dynamodb, name)
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"events-{name}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    store.events.create_event_bus(Name=store.event_bus)
    store.events.put_rule(Name="job-status", EventBusName=store.event_bus, EventPattern=json.dumps({"source": ["audience-pipelines"]}))
    store.events.put_targets(Rule="job-status", EventBusName=store.event_bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return Env(store, queue_url, sqs)


@pytest.fixture
def env(stack: object) -> Env:
    return make_env()


@pytest.fixture(scope="module")
def serialized_moto(stack: object) -> Iterator[str]:
    """Bridge: an in-process moto server handling one request at a time, like DynamoDB applies each write atomically.

    The moto server's DynamoDB checks a ConditionExpression and applies the update without a lock,
    and its HTTP server is threaded, so two concurrent conditional updates of one item can both
    pass (about 1 round in 100 with 8 threads). Serializing requests restores what real DynamoDB
    guarantees per request, and nothing more: a client doing read-then-write still races here.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join()


def test_create_stores_a_queued_job_and_publishes_it(env: Env) -> None:
    job = env.store.create("job-1", "send_audience_to_kafka", PARAMS)

    assert (job.job_id, job.pipeline, job.status, job.params) == ("job-1", "send_audience_to_kafka", QUEUED, PARAMS)
    assert job.created_at == job.updated_at == job.queued_at and job.created_at.endswith("Z")
    assert env.store.get("job-1") == job
    assert json.loads(env.raw("job-1")["params"]["S"]) == PARAMS  # params are a JSON string in the item
    assert job.to_api() == {
        "job_id": "job-1",
        "pipeline": "send_audience_to_kafka",
        "status": QUEUED,
        "rows_written": None,
        "rows_read": None,
        "rows_skipped": None,
        "error": None,
        "progress": None,  # until the Plan step records the shard count
        "created_at": job.created_at,
        "updated_at": job.created_at,
    }
    assert env.events() == [{"job_id": "job-1", "pipeline": "send_audience_to_kafka", "status": QUEUED, "previous_status": None}]


def test_duplicate_create_is_rejected_and_carries_the_existing_job(env: Env) -> None:
    job_id = env.new_job(RUNNING)
    before = env.raw(job_id)

    with pytest.raises(JobExists, match=f"job {job_id} exists already") as caught:
        env.store.create(job_id, "another_pipeline", {"OTHER": "1"})

    assert isinstance(caught.value, RunError)
    assert caught.value.job.status == RUNNING and caught.value.job.pipeline == "send_audience_to_kafka"
    assert caught.value.job.params == PARAMS
    assert env.raw(job_id) == before
    assert env.events() == []


def test_happy_path_stores_counts_and_each_status_time(env: Env) -> None:
    store = env.store
    store.create("job-1", "send_audience_to_kafka", PARAMS)
    running = store.transition("job-1", RUNNING)
    summary = {"rows_read": 1_000_003, "rows_written": 1_000_000, "rows_skipped": 3, "end_markers": 6, "seconds": 12.5, "shards": 4}
    done = store.transition("job-1", SUCCEEDED, counts=summary)

    assert running.status == RUNNING and running.running_at is not None and running.rows_written is None
    assert done == store.get("job-1")
    assert (done.status, done.rows_read, done.rows_written, done.rows_skipped, done.end_markers) == (SUCCEEDED, 1_000_003, 1_000_000, 3, 6)
    assert done.error is None and done.failed_at is None
    assert done.created_at == done.queued_at < done.running_at < done.succeeded_at == done.updated_at
    assert "seconds" not in env.raw("job-1")  # only the count fields are stored
    assert done.to_api()["rows_written"] == 1_000_000 and done.to_api()["status"] == SUCCEEDED
    base = {"job_id": "job-1", "pipeline": "send_audience_to_kafka"}
    assert env.events() == [
        {**base, "status": QUEUED, "previous_status": None},
        {**base, "status": RUNNING, "previous_status": QUEUED},
        {**base, "status": SUCCEEDED, "previous_status": RUNNING, "rows_written": 1_000_000},
    ]


def test_every_disallowed_transition_is_rejected_and_changes_nothing(env: Env) -> None:
    rejected = [(a, b) for a in STATUSES for b in STATUSES if (a, b) not in ALLOWED]
    assert len(rejected) == 12  # duplicates (X -> X), backwards, skipping RUNNING, out of a final status
    for from_status, to_status in rejected:
        job_id = env.new_job(from_status)
        before = env.raw(job_id)

        with pytest.raises(TransitionRejected) as caught:
            env.store.transition(job_id, to_status, counts={"rows_written": 5})

        assert (caught.value.job_id, caught.value.from_status, caught.value.to_status) == (job_id, from_status, to_status)
        assert job_id in str(caught.value) and from_status in str(caught.value)
        assert env.raw(job_id) == before, f"{from_status} -> {to_status} changed the item"
        assert env.events() == [], f"{from_status} -> {to_status} published an event"


def test_messages_of_rejected_transitions(env: Env) -> None:
    running = env.new_job(RUNNING)
    with pytest.raises(TransitionRejected, match=f"job {running} is already RUNNING: duplicate transition rejected"):
        env.store.transition(running, RUNNING)
    queued = env.new_job(QUEUED)
    with pytest.raises(TransitionRejected, match=rf"job {queued} is QUEUED: cannot go to SUCCEEDED \(only from RUNNING\)"):
        env.store.transition(queued, SUCCEEDED)


def test_transition_of_a_missing_job_is_rejected_without_creating_it(env: Env) -> None:
    with pytest.raises(TransitionRejected, match="job nope does not exist: cannot mark it RUNNING") as caught:
        env.store.transition("nope", RUNNING)
    assert caught.value.from_status is None
    assert env.raw("nope") is None  # update_item would upsert without the existence condition
    assert env.events() == []


def test_bad_arguments_are_refused_before_writing(env: Env) -> None:
    job_id = env.new_job(RUNNING)
    with pytest.raises(ValueError, match="unknown status"):
        env.store.transition(job_id, "DONE")
    with pytest.raises(ValueError, match="an error goes with FAILED"):
        env.store.transition(job_id, SUCCEEDED, error="boom")
    with pytest.raises(ValueError, match="rows_written must be a whole number"):
        env.store.transition(job_id, SUCCEEDED, counts={"rows_written": "12"})
    assert env.store.get(job_id).status == RUNNING


def test_failed_from_queued_stores_the_error(env: Env) -> None:
    job_id = env.new_job(QUEUED)
    job = env.store.transition(job_id, FAILED, error={"Error": "States.TaskFailed", "Cause": "the plan found no objects"})

    assert job.status == FAILED and job.running_at is None and job.failed_at == job.updated_at
    assert env.store.get(job_id).error == {"Error": "States.TaskFailed", "Cause": "the plan found no objects"}
    assert env.store.get(job_id).to_api()["error"] == job.error
    assert env.events() == [
        {
            "job_id": job_id,
            "pipeline": "send_audience_to_kafka",
            "status": FAILED,
            "previous_status": QUEUED,
            "error": {"Error": "States.TaskFailed", "Cause": "the plan found no objects"},
        }
    ]


def test_failed_from_running_stores_partial_counts_and_a_truncated_cause(env: Env) -> None:
    job_id = env.new_job(RUNNING)
    cause = json.dumps({"errorMessage": "shard 7: " + "x" * 40_000})
    job = env.store.transition(job_id, FAILED, counts={"rows_written": 10}, error={"Error": "RunError", "Cause": cause})

    stored = env.store.get(job_id)
    assert stored == job and stored.rows_written == 10
    assert stored.error["Error"] == "RunError"
    assert stored.error["Cause"].startswith(cause[:MAX_CAUSE]) and len(stored.error["Cause"]) < MAX_CAUSE + 100
    assert stored.error["Cause"].endswith(f"[{len(cause) - MAX_CAUSE} more characters]")
    [event] = env.events()
    assert (event["status"], event["previous_status"], event["rows_written"]) == (FAILED, RUNNING, 10)
    assert event["error"] == stored.error

    plain = env.new_job(RUNNING)
    assert env.store.transition(plain, FAILED, error="broker unreachable").error == {"Error": "JobFailed", "Cause": "broker unreachable"}


def race(store: JobStore, job_id: str, to_status: str, threads_count: int) -> tuple[list[Any], list[TransitionRejected], list[Exception]]:
    """``threads_count`` threads released at once, each trying the same transition: (jobs won, rejections, other errors)."""
    barrier = threading.Barrier(threads_count)
    won: list[Any] = []
    rejected: list[TransitionRejected] = []
    other: list[Exception] = []

    def attempt(i: int) -> None:
        kwargs: dict[str, Any] = {"error": f"attempt {i}"} if to_status == FAILED else {"counts": {"rows_written": i}}
        barrier.wait()
        try:
            won.append(store.transition(job_id, to_status, **kwargs))
        except TransitionRejected as exc:
            rejected.append(exc)
        except Exception as exc:  # noqa: BLE001 - asserted empty by the caller
            other.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, rejected, other


@pytest.mark.parametrize(("start", "to_status"), [(RUNNING, SUCCEEDED), (QUEUED, RUNNING), (RUNNING, FAILED)])
def test_concurrent_duplicate_transitions_have_exactly_one_winner(
    serialized_moto: str, monkeypatch: pytest.MonkeyPatch, start: str, to_status: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", serialized_moto)  # see serialized_moto for why not the stack's moto
    env = make_env()
    for _ in range(10):
        job_id = env.new_job(start)
        won, rejected, other = race(env.store, job_id, to_status, 8)

        assert other == []
        assert len(won) == 1 and len(rejected) == 7
        assert all(exc.from_status == to_status for exc in rejected)
        assert env.store.get(job_id) == won[0]
        assert [(e["status"], e["previous_status"]) for e in env.events()] == [(to_status, start)]


def test_get_of_a_missing_job_is_none(env: Env) -> None:
    assert env.store.get("missing") is None


def test_list_is_newest_first_with_a_status_filter(env: Env) -> None:
    ids = [env.new_job(status) for status in (QUEUED, RUNNING, SUCCEEDED, RUNNING, FAILED)]
    newest_first = ids[::-1]

    assert [job.job_id for job in env.store.list()] == newest_first
    assert [job.job_id for job in env.store.list(limit=2)] == newest_first[:2]
    assert [job.job_id for job in env.store.list(status=RUNNING)] == [ids[3], ids[1]]
    assert [job.job_id for job in env.store.list(limit=1, status=RUNNING)] == [ids[3]]
    assert env.store.list(status=QUEUED)[0].job_id == ids[0]
    with pytest.raises(ValueError, match="unknown status"):
        env.store.list(status="DONE")


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINES_JOBS_TABLE", raising=False)
    monkeypatch.delenv("PIPELINES_EVENT_BUS", raising=False)
    with pytest.raises(ConfigError, match="PIPELINES_JOBS_TABLE is not set"):
        JobStore.from_env()

    monkeypatch.setenv("PIPELINES_JOBS_TABLE", "jobs")
    assert JobStore.from_env() == JobStore("jobs", event_bus="default")
    monkeypatch.setenv("PIPELINES_EVENT_BUS", "platform")
    assert JobStore.from_env() == JobStore("jobs", event_bus="platform", source="audience-pipelines")


def test_create_table_is_idempotent(env: Env) -> None:
    job_id = env.new_job(RUNNING)
    create_table(env.store.dynamodb, env.store.table)
    assert env.store.get(job_id).status == RUNNING


def test_a_missing_table_is_a_clear_run_error(stack: object) -> None:
    store = JobStore(f"absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(RunError, match=f"the jobs table {store.table} does not exist"):
        store.create("job-1", "p", {})
    with pytest.raises(RunError, match="does not exist"):
        store.get("job-1")


def test_an_unpublished_event_is_an_error_saying_the_status_was_written(env: Env) -> None:
    store = JobStore(env.store.table, event_bus="no-such-bus")
    with pytest.raises(RunError, match="job job-1 is QUEUED in table .*, but its status event was not published to EventBridge bus no-such-bus"):
        store.create("job-1", "send_audience_to_kafka", PARAMS)
    assert env.store.get("job-1").status == QUEUED

    class Refusing:  # a bus answering with a failed entry (FailedEntryCount > 0)
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]}

    store.__dict__["events"] = Refusing()  # replaces the lazily created client
    with pytest.raises(RunError, match=r"job job-1 is RUNNING in table .* \(InternalFailure: try again\)"):
        store.transition("job-1", RUNNING)
    assert env.store.get("job-1").status == RUNNING
