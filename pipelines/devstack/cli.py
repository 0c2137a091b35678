"""`pipelines dev ...`: the local stack (Kafka from its jars, moto server) and sample data for it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipelines.cli.types import StorageUri

DEFAULT_STATE_DIR = Path(".dev")


def _stack_error(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group(short_help="The local stack: Kafka, moto and the workflow.")
def dev() -> None:
    """The local stack: Apache Kafka (KRaft, from its jars), a moto server running the workflow and a
    schema registry (Apicurio, Confluent-compatible API), on 127.0.0.1.

    \b
    eval "$(pipelines dev up)"    # start them; exports KAFKA_BOOTSTRAP, AWS_ENDPOINT_URL, SCHEMA_REGISTRY_URL, credentials, PIPELINES_*
    pipelines dev status
    pipelines dev down

    \b
    Exit codes: 0 done; 1 a service did not start or answer (status: not all running); 2 the
    command line is wrong.
    """


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    envvar="PIPELINES_DEV_STATE",
    show_envvar=True,
    help="Where the stack keeps its data, logs and pids.",
)


@dev.command(short_help="Start Kafka and moto; apply the Terraform module.")
@state_dir_option
@click.option("--kafka-port", default=9092, show_default=True, type=click.IntRange(1, 65535), help="The broker's client port (KAFKA_BOOTSTRAP).")
@click.option("--controller-port", default=9093, show_default=True, type=click.IntRange(1, 65535), help="The KRaft controller's port.")
@click.option("--moto-port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="The AWS emulator's port (AWS_ENDPOINT_URL).")
@click.option("--registry-port", default=8081, show_default=True, type=click.IntRange(0, 65535), help="The schema registry's port (0: no schema registry).")
@click.option("--api-url", default="http://127.0.0.1:8080", show_default=True, help="Exported as PIPELINES_API_URL (where `pipelines api serve` listens).")
@click.option(
    "--image",
    metavar="TAG",
    help="Run the workflow's ECS tasks and Lambda invocations in this image (`bin/image build` makes audience-pipelines:dev), as AWS would, instead of this checkout.",
)
@click.option(
    "--workflow/--no-workflow",
    default=True,
    show_default=True,
    help="Apply the Terraform module to the emulator (terraform/examples/local: state machine, Lambda, roles, table, bucket, rules, schedule, API; "
    "needs terraform and the hashicorp/aws provider, about 80 s the first time). --no-workflow: Kafka and the emulator only, enough for `pipelines run`.",
)
def up(
    state_dir: Path, kafka_port: int, controller_port: int, moto_port: int, registry_port: int, api_url: str, image: str | None, workflow: bool
) -> None:
    """Start Kafka and the AWS emulator (moto with Step Functions execution and the workflow's
    bridges; Kafka's jars are fetched with Maven the first time), wait until both answer, apply the
    Terraform module to the emulator (as `bin/deploy-local` does), then print `export ...` lines
    for `eval`. Progress goes to stderr."""
    import dataclasses

    from pipelines.devstack.stack import StackConfig, StackError, up as stack_up

    if workflow:
        _check_terraform()
    config = StackConfig(state_dir.resolve(), kafka_port, controller_port, moto_port, registry_port=registry_port or None, image=image)
    try:
        info = stack_up(config)
    except StackError as exc:
        _stack_error(exc)
    environment: dict[str, str] = {}
    if workflow:
        try:
            environment, ready = _apply_workflow(info, api_url)
        except Exception as exc:  # noqa: BLE001 - any failure here is reported in one line
            _stack_error(Exception(f"the stack runs, but the Terraform module could not be applied to {info.aws_endpoint_url}: {exc}"))
        click.echo(ready, err=True)
    if info.schema_registry_url:
        click.echo(f"schema registry: {info.schema_registry_url} (Confluent-compatible API)", err=True)
    click.echo(dataclasses.replace(info, workflow=environment).shell_lines())


def _check_terraform() -> None:
    """Refuses to start when the module cannot be applied, before anything starts."""
    from pipelines.devstack.deploy import DeployError, plugin_dir, terraform_binary

    try:
        terraform_binary()
    except DeployError as exc:
        raise click.UsageError(f"{exc}; or start without the workflow: pipelines dev up --no-workflow") from None
    if plugin_dir() is None and not os.environ.get("TF_CLI_CONFIG_FILE"):
        click.echo("note: no local copy of the hashicorp/aws provider was found (PIPELINES_TF_PLUGIN_DIR); terraform init will try the registry", err=True)


def _apply_workflow(info: object, api_url: str) -> tuple[dict[str, str], str]:
    """terraform/examples/local applied to the stack's emulator: the environment for `pipelines api
    serve` and `pipelines jobs`, and a line saying what is ready."""
    from pipelines.devstack.deploy import deploy, workflow_env

    outputs = deploy(info.state_dir / "deploy-local", {**os.environ, **info.env()})  # type: ignore[attr-defined]
    bucket = outputs["bucket_name"]
    ready = f"workflow ready, applied by Terraform: state machine {outputs['state_machine_arn'].rsplit(':', 1)[-1]}, API {outputs['api_id']}, drops s3://{bucket}/drops/*.csv.gz"
    return workflow_env(outputs, api_url), ready


@dev.command(short_help="Stop what `pipelines dev up` started.")
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop exactly the processes `pipelines dev up` started."""
    from pipelines.devstack.stack import StackError, down as stack_down

    try:
        stopped = stack_down(state_dir.resolve())
    except StackError as exc:
        _stack_error(exc)
    from pipelines.devstack.deploy import forget_state

    forget_state(state_dir.resolve() / "deploy-local")  # the emulator kept its resources in memory: they are gone
    click.echo("\n".join(f"stopped {s}" for s in stopped) if stopped else "nothing was running", err=True)


@dev.command(short_help="Whether the local stack answers (JSON).")
@state_dir_option
def status(state_dir: Path) -> None:
    """Show whether Kafka, moto (and the schema registry, if started) are running and answering (JSON); exit 1 if not all."""
    import json

    from pipelines.devstack.stack import status as stack_status

    state = stack_status(state_dir.resolve())
    click.echo(json.dumps(state, indent=2, default=str))
    ok = all(part.get("running") and part.get("answers") for part in state.values() if isinstance(part, dict))
    sys.exit(0 if ok and state else 1)


@dev.command(short_help="Fetch Kafka's jars and the schema registry.")
@state_dir_option
def install(state_dir: Path) -> None:
    """Fetch Kafka's jars and the schema registry with Maven into the cache (done by `up` too)."""
    from pipelines.devstack.stack import StackError, ensure_kafka_jars, ensure_schema_registry

    try:
        click.echo(str(ensure_kafka_jars()))
        click.echo(str(ensure_schema_registry()))
    except StackError as exc:
        _stack_error(exc)


@dev.command("create-topic", short_help="Create TOPIC on the local broker.")
@click.argument("topic")
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(min=1), help="Partitions of the new topic.")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", show_envvar=True, required=True, help="The broker, host:port.")
def create_topic(topic: str, partitions: int, bootstrap: str) -> None:
    """Create TOPIC on the local broker (no error if it exists with that many partitions)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = admin.list_topics(timeout=10).topics
        if topic in existing:
            have = len(existing[topic].partitions)
            if have != partitions:
                _stack_error(Exception(f"topic '{topic}' exists with {have} partitions, not {partitions}"))
            click.echo(f"topic '{topic}' exists ({have} partitions)", err=True)
            return
        admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    except KafkaException as exc:
        _stack_error(Exception(f"cannot create topic '{topic}' at {bootstrap}: {exc.args[0].str()}"))
    click.echo(f"created topic '{topic}' ({partitions} partitions)", err=True)


@dev.command("sample-audience", short_help="Write a gzip CSV audience (local or s3://).")
@click.option("--rows", default=1_000_000, show_default=True, type=click.IntRange(min=1), help="How many rows.")
@click.option("--seed", default=7, show_default=True, help="The random seed: the same seed, the same rows.")
@click.argument("destination", type=StorageUri())
def sample_audience(rows: int, seed: int, destination: str) -> None:
    """Write a gzip CSV audience (user_id,country,score,opted_in,updated_at) to DESTINATION
    (s3://bucket/key.csv.gz, the bucket created if missing, or a local path)."""
    import os
    import tempfile

    from pipelines.devstack.sample import write_audience_gzip

    if not destination.startswith("s3://"):
        write_audience_gzip(destination, rows, seed)
        click.echo(f"wrote {rows:,} rows to {destination}", err=True)
        return
    from pipelines.engine.s3 import s3_client

    bucket, _, key = destination.removeprefix("s3://").partition("/")
    client = s3_client()
    if bucket not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=bucket)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "audience.csv.gz")
        write_audience_gzip(path, rows, seed)
        client.upload_file(path, bucket, key)
        size = os.path.getsize(path)
    click.echo(f"wrote {rows:,} rows ({size / 1e6:.1f} MB gzip) to {destination}", err=True)
