"""The AWS resources the workflow needs, created in the local stack's AWS emulator (the workflow
server) from the same files Terraform uses: statemachine.json (``pipelines.aws.workflow.render_definition``)
and workflow/s3_drop_rule.json + workflow/s3_drop_input.json (``pipelines.aws.triggers.render_trigger``).

    create_local_workflow(endpoint) -> {"PIPELINES_STATE_MACHINE_ARN", "PIPELINES_JOBS_TABLE",
                                        "PIPELINES_EVENT_BUS", "PIPELINES_API_URL"}

Everything is created idempotently (found by name, created when missing; the state machine's
definition is updated to the current statemachine.json), so ``pipelines dev up`` may call it on
every run:

- the jobs table (``pipelines.aws.jobs.create_table``);
- a VPC, a subnet and a security group (the shard tasks' network configuration);
- an ECS cluster and a Fargate task definition (the bridge runs ``python -m pipelines`` instead);
- an IAM role and the Lambda function (dummy code: the bridge runs ``pipelines.aws.handler.handler``);
- the state machine (``statemachine.json``, MaxConcurrency 2, one shard up to 8 MiB in the Lambda);
- the bucket of the workflow's default work dir and error output (``audiences``: ``_jobs``,
  ``_errors/``; the emulator's environment names them, as Terraform does the module's bucket);
- the drop bucket (``audiences``) with EventBridge notifications on, and the S3-drop rule on the
  default bus (``send_audience_to_kafka`` for ``drops/*.csv.gz``) targeting the Lambda with the
  rendered InputTransformer, as Terraform wires it.

This is the default of ``pipelines dev up``, for a machine without Terraform: ``pipelines dev up
--terraform`` (or ``bin/deploy-local`` on a running stack) creates all of it, and the API, by
applying the Terraform module instead (terraform/examples/local, ``pipelines.devstack.deploy``).

The names are fixed (``JOBS_TABLE``, ``STATE_MACHINE_NAME``), because the emulator is started
with them in its environment (``aws_emulator.emulator_env``): the Lambda handler running inside it
updates job statuses and, for a trigger, starts executions.

Known gap (moto 5.2.5): EventBridge cannot deliver to a Lambda target: moto's
``Rule.send_to_targets`` raises NotImplementedError for it (the workflow server bridges state
machine targets only), and S3's notification path swallows that error. So an S3 drop into the
bucket starts nothing locally yet; the rule and its target are still created as on AWS.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
NAME = "audience-pipelines"
JOBS_TABLE = f"{NAME}-jobs"
STATE_MACHINE_NAME = NAME
FUNCTION_NAME = NAME
EVENT_BUS = "default"  # S3 events arrive there; status events are published there too
DEFAULT_API_URL = "http://127.0.0.1:8080"
DROP_BUCKET = "audiences"
DROP_PIPELINE = "send_audience_to_kafka"
DROP_PREFIX = "drops/"
DROP_SUFFIX = ".csv.gz"
MAX_CONCURRENCY = 2
SMALL_JOB_BYTES = 8 << 20
CONTAINER_NAME = "engine"


EXPORT_PIPELINE = "export_audience_to_s3"  # a bounded snapshot of the audience topic into gzip CSV in S3, with a manifest
EXPORT_BUCKET = DROP_BUCKET  # the local stack's one bucket: drops, work files and exports
WORK_BUCKET = DROP_BUCKET  # the workflow tasks' default work dir and error output are there (_jobs, _errors/)
EXPORT_SCHEDULE_NAME = f"{NAME}-nightly-export"
EXPORT_SCHEDULE = "cron(0 3 * * ? *)"


def state_machine_arn(region: str = REGION, account: str = ACCOUNT, name: str = STATE_MACHINE_NAME) -> str:
    return f"arn:aws:states:{region}:{account}:stateMachine:{name}"


def drop_rule_name(bucket: str) -> str:
    return f"{NAME}-s3-drop-{bucket}"[:64]


def create_local_workflow(
    endpoint: str,
    *,
    bucket: str = DROP_BUCKET,
    pipeline: str = DROP_PIPELINE,
    prefix: str = DROP_PREFIX,
    suffix: str = DROP_SUFFIX,
    api_url: str = DEFAULT_API_URL,
    max_concurrency: int = MAX_CONCURRENCY,
    small_job_bytes: int = SMALL_JOB_BYTES,
    region: str = REGION,
) -> dict[str, str]:
    """Creates (or finds) everything the state machine and the S3-drop trigger need in the emulator
    at ``endpoint``; returns the environment for ``pipelines api serve`` and ``pipelines jobs``."""
    import boto3

    from pipelines.aws.jobs import create_table

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    create_table(client("dynamodb"), JOBS_TABLE)
    subnet, group = _network(client("ec2"))
    cluster, task_definition = _ecs(client("ecs"))
    role = _role(client("iam"))
    function = _function(client("lambda"), role)
    values = {
        "function_arn": function,
        "cluster_arn": cluster,
        "task_definition_arn": task_definition,
        "container_name": CONTAINER_NAME,
        "subnet_ids": subnet,
        "security_group_ids": group,
        "max_concurrency": str(max_concurrency),
        "small_job_bytes": str(small_job_bytes),
    }
    machine = _state_machine(client("stepfunctions"), values, role, region)
    _work_bucket(client("s3"))
    _drop_bucket(client("s3"), bucket)
    _drop_rule(client("events"), function, bucket=bucket, pipeline=pipeline, prefix=prefix, suffix=suffix)
    _schedule(client("scheduler"), function, role)
    return {
        "PIPELINES_STATE_MACHINE_ARN": machine,
        "PIPELINES_JOBS_TABLE": JOBS_TABLE,
        "PIPELINES_EVENT_BUS": EVENT_BUS,
        "PIPELINES_API_URL": api_url,
    }


def _work_bucket(s3: Any) -> None:
    """The bucket of the workflow's default work dir and error output (``aws_emulator.workflow_defaults``),
    created when missing: the module's bucket on AWS."""
    if WORK_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=WORK_BUCKET)


def _drop_bucket(s3: Any, bucket: str) -> None:
    """The drop bucket (created when missing), sending its events to EventBridge."""
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})


def _drop_rule(events: Any, function: str, *, bucket: str, pipeline: str, prefix: str, suffix: str) -> None:
    """The S3-drop rule on the default bus (workflow/s3_drop_rule.json), targeting the Lambda with
    the InputTransformer of workflow/s3_drop_input.json, as Terraform wires it."""
    from pipelines.aws.triggers import render_trigger

    rule = drop_rule_name(bucket)
    pattern = render_trigger("s3_drop_rule", {"bucket": bucket, "prefix": prefix, "suffix": suffix})
    events.put_rule(Name=rule, EventBusName=EVENT_BUS, EventPattern=json.dumps(pattern), State="ENABLED")
    transformer = render_trigger("s3_drop_input", {"pipeline": pipeline})
    events.put_targets(Rule=rule, EventBusName=EVENT_BUS, Targets=[{"Id": "importer", "Arn": function, "InputTransformer": transformer}])


def _schedule(scheduler: Any, function: str, role: str) -> None:
    """The scheduled export: an EventBridge Scheduler schedule targeting the Lambda with the input of
    workflow/schedule_input.json (moto stores it but never fires it: tests start its input themselves)."""
    from pipelines.aws.triggers import render_trigger

    target = {"Arn": function, "RoleArn": role, "Input": json.dumps(render_trigger("schedule_input", {"export_pipeline": EXPORT_PIPELINE, "export_bucket": EXPORT_BUCKET}))}
    settings = {"ScheduleExpression": EXPORT_SCHEDULE, "FlexibleTimeWindow": {"Mode": "OFF"}, "Target": target, "State": "ENABLED"}
    try:
        scheduler.create_schedule(Name=EXPORT_SCHEDULE_NAME, **settings)
    except scheduler.exceptions.ConflictException:
        scheduler.update_schedule(Name=EXPORT_SCHEDULE_NAME, **settings)


def _network(ec2: Any) -> tuple[str, str]:
    """The VPC, subnet and security group tagged/named ``audience-pipelines`` (created when missing)."""
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"]
    if vpcs:
        vpc = vpcs[0]["VpcId"]
    else:
        vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": NAME}]}])["Vpc"]["VpcId"]
    # moto's ECS RunTask (awsvpc) reads the ENI's private DNS name, which needs DNS hostnames on
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "tag:Name", "Values": [NAME]}])["Subnets"]
    if subnets:
        subnet = subnets[0]["SubnetId"]
    else:
        subnet = ec2.create_subnet(
            VpcId=vpc, CidrBlock="10.42.1.0/24", TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": NAME}]}]
        )["Subnet"]["SubnetId"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": [f"{NAME}-shards"]}])["SecurityGroups"]
    if groups:
        group = groups[0]["GroupId"]
    else:
        group = ec2.create_security_group(VpcId=vpc, GroupName=f"{NAME}-shards", Description="shard tasks")["GroupId"]
    return subnet, group


def _ecs(ecs: Any) -> tuple[str, str]:
    clusters = [c for c in ecs.describe_clusters(clusters=[NAME])["clusters"] if c.get("status") == "ACTIVE"]
    cluster = clusters[0]["clusterArn"] if clusters else ecs.create_cluster(clusterName=NAME)["cluster"]["clusterArn"]
    family = f"{NAME}-shard"
    try:
        task_definition = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]["taskDefinitionArn"]
    except ecs.exceptions.ClientException:
        task_definition = ecs.register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="1024",
            memory="2048",
            containerDefinitions=[{"name": CONTAINER_NAME, "image": "audience-pipelines:local", "memory": 2048, "essential": True}],
        )["taskDefinition"]["taskDefinitionArn"]
    return cluster, task_definition


def _role(iam: Any) -> str:
    try:
        return str(iam.get_role(RoleName=NAME)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        pass
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com", "events.amazonaws.com"]}, "Action": "sts:AssumeRole"}
        ],
    }
    return str(iam.create_role(RoleName=NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def _function(lambda_client: Any, role: str) -> str:
    try:
        return str(lambda_client.get_function(FunctionName=FUNCTION_NAME)["Configuration"]["FunctionArn"])
    except lambda_client.exceptions.ResourceNotFoundException:
        pass
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("README.txt", "bridged: the workflow server runs pipelines.aws.handler.handler in its own process\n")
    return str(
        lambda_client.create_function(
            FunctionName=FUNCTION_NAME,
            Runtime="python3.11",
            Role=role,
            Handler="pipelines.aws.handler.handler",
            Code={"ZipFile": code.getvalue()},
            Timeout=900,
        )["FunctionArn"]
    )


def _state_machine(sfn: Any, values: dict[str, str], role: str, region: str) -> str:
    """The state machine, its definition statemachine.json filled with ``values`` (created, or updated to it)."""
    from pipelines.aws.workflow import render_definition

    definition = render_definition(values)
    arn = state_machine_arn(region)
    try:
        sfn.describe_state_machine(stateMachineArn=arn)
    except sfn.exceptions.StateMachineDoesNotExist:
        return str(sfn.create_state_machine(name=STATE_MACHINE_NAME, definition=definition, roleArn=role)["stateMachineArn"])
    sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
    return arn


def largest_payload(events: list[dict[str, Any]]) -> tuple[int, str]:
    """The largest input/output/parameters string (in bytes) of an execution's history events, and
    where it was (`<event type>.<field>`): what Step Functions' 256 KB payload limit applies to."""
    best = (0, "")
    for event in events:
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                for field in ("input", "output", "parameters"):
                    text = details.get(field)
                    if isinstance(text, str) and len(text.encode()) > best[0]:
                        best = (len(text.encode()), f"{event['type']}.{field}")
    return best
