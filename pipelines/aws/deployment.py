"""What the deployed engine reads from its environment, by where it runs.

Terraform gives the ECS task definition's container and the Lambda function exactly these
variables (tests/test_terraform.py checks both against this module), and nothing else the
engine does not read. Job parameters (S3_BUCKET, KAFKA_TOPIC, ...) are not here: they reach a
run as `$PIPELINES_PARAMS`, set per task by the state machine.
"""

from __future__ import annotations

# Read wherever the engine runs: by the configs (configs/_kafka.yml.liquid and the pipelines), and by
# the engine for the defaults of exec.work_dir and exec.error_output and for a shard's progress.
ENGINE_ENV: dict[str, str] = {
    "KAFKA_BOOTSTRAP": "the brokers, host:port[,host:port...]",
    "KAFKA_AUTH": "none, scram (SASL/SCRAM-SHA-512 over TLS) or msk_iam (SASL/OAUTHBEARER with MSK IAM over TLS)",
    "KAFKA_SASL_SECRET_ARN": "with scram: the Secrets Manager secret holding {\"username\", \"password\"}, read at run time",
    "SCHEMA_REGISTRY_URL": "the Confluent-compatible schema registry, for Avro pipelines",
    "PIPELINES_WORK_DIR": "exec.work_dir of a config that sets none: s3://<the module's bucket>/_jobs (plans, shard reports, summaries)",
    "PIPELINES_ERROR_OUTPUT": "exec.error_output of a config that sets none: s3://<the module's bucket>/_errors/",
    "PIPELINES_JOBS_TABLE": "the DynamoDB table of job statuses; a workflow's shard adds its counts to its job's item there",
    "PIPELINES_METRICS_NAMESPACE": "the CloudWatch namespace of the EMF metric lines (the module's dashboard and alarm read it)",
    "OPENLINEAGE_URL": "an OpenLineage HTTP endpoint for each job's START and COMPLETE/FAIL events; empty: none sent",
}

# Read only by the Lambda's handler: status events, and starting executions (API and triggers).
LAMBDA_ENV: dict[str, str] = {
    "PIPELINES_EVENT_BUS": "the EventBridge bus status changes are published to",
    "PIPELINES_STATE_MACHINE_ARN": "the state machine the API and the triggers start",
}

# Set per run by the state machine (the ECS task's container override), never in the task definition.
PER_RUN_ENV: dict[str, str] = {
    "PIPELINES_PARAMS": "the job's params as one JSON object",
    "PIPELINES_JOB_ID": "the job the shard belongs to: its counts go to this job's progress in PIPELINES_JOBS_TABLE",
}

# Read by the engine when set, with defaults that fit a deployment: left out of Terraform on purpose.
OPTIONAL_ENV: dict[str, str] = {
    "PIPELINES_CONFIGS": "where the configs are (default: configs/ beside the package; container/Dockerfile sets /app/configs)",
    "PIPELINES_SHARD_BYTES": "the plan's shard size in bytes (default 128 MiB)",
    "PIPELINES_SHARD_TIME_LIMIT": "seconds a shard may run before it stops itself (exit 75); default from its size, 120 to 900",
    "PIPELINES_KAFKA_DEBUG": "1: librdkafka's own log on stderr",
    "PIPELINES_NATIVE": "0: the Python loops instead of the compiled ones (setup.py), same results, slower",
    "MALLOC_ARENA_MAX": "glibc's arena limit (the engine sets 2 itself)",
    "KAFKA_CONNECT_TIMEOUT_SECONDS": "how long to wait for the brokers (default 15)",
    "KAFKA_TRANSACTIONAL": "false: no transaction per shard (default true)",
    "AWS_MAX_ATTEMPTS": "the AWS SDK's tries of one S3 request (default 9 here)",
    "PIPELINES_METRICS": "emf: EMF metric lines on stdout anywhere; off: none (default: on in Lambda and ECS only)",
    "OPENLINEAGE_NAMESPACE": "the OpenLineage job namespace (default audience-pipelines)",
    "OPENLINEAGE_API_KEY": "a bearer token for OPENLINEAGE_URL (the openlineage-python client reads it)",
    "OPENLINEAGE_DISABLED": "true: no lineage events even with OPENLINEAGE_URL set",
    # in.auth_method (embulk-input-s3): env and session read these; profile reads the profiles file.
    # A deployment uses the task's or the function's role instead (auth_method default).
    "AWS_ACCESS_KEY_ID": "auth_method env/session: the access key (Embulk also reads AWS_ACCESS_KEY)",
    "AWS_ACCESS_KEY": "auth_method env: Embulk's other name for AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "auth_method env/session: the secret key (Embulk also reads AWS_SECRET_KEY)",
    "AWS_SECRET_KEY": "auth_method env: Embulk's other name for AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN": "auth_method session: the session token",
    "AWS_CREDENTIAL_PROFILES_FILE": "auth_method profile: the profiles file (Embulk's name; default botocore's)",
}


def task_environment() -> set[str]:
    """The variables the ECS task definition's container sets."""
    return set(ENGINE_ENV)


def lambda_environment() -> set[str]:
    """The variables the Lambda function sets."""
    return set(ENGINE_ENV) | set(LAMBDA_ENV)
