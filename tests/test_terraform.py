"""terraform/, checked offline: HCL parsing, the module's contract with the engine, checkov, and,
where the tools are on the machine, terraform fmt / validate / test.

No provider can be downloaded here, so nothing needs one unless a local copy is found:

- Every .tf file (the module and examples/complete) parses with `hcl2` (the python-hcl2 API; the
  package is bc-python-hcl2, checkov's fork of python-hcl2, from the test extra: the parser checkov itself uses).
- The contract, read from the parsed HCL:
  * statemachine.json's placeholders are exactly what the state machine's templatefile() call
    passes (and pipelines.aws.workflow.PLACEHOLDERS); the same for each workflow/*.json trigger file
    against pipelines.aws.triggers.PLACEHOLDERS;
  * every AWS action the workflow performs (derived by walking statemachine.json's states: Task
    resources, ItemReader, Distributed Map, logging, tracing) is allowed by the state machine's role,
    on the resources the definition names;
  * the ECS container's environment is pipelines.aws.deployment.task_environment() and the Lambda's is
    lambda_environment(); the container name is the one the state machine overrides;
  * the roles of the shard tasks and the Lambda allow what the engine calls;
  * no identity policy statement has "Resource": "*" unless all its actions are ones AWS authorizes
    on "*" only, and such a statement has a comment saying so.
- checkov (once per session, in parallel with the rest): no failed check; every skip has a reason.
- terraform fmt -check when a terraform binary is on PATH; terraform validate (module and example)
  and `terraform test` (terraform/tests/*.tftest.hcl, mocked provider) when a local copy of the
  AWS provider is found too ($PIPELINES_TF_PLUGIN_DIR, or a plugin folder on the machine). They run
  on a copy of the files in a temporary folder, so nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.aws import deployment, triggers, workflow

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM = ROOT / "terraform"
EXAMPLE = TERRAFORM / "examples" / "complete"

hcl2 = pytest.importorskip("hcl2", reason="bc-python-hcl2 is in the test extra (pip install -e '.[test]')")

# Step Functions' log delivery to CloudWatch Logs, and X-Ray tracing: what a state machine with
# logging and tracing calls with its role.
LOGGING_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
TRACING_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}

# Actions AWS authorizes on "*" only (no resource-level permissions), the only ones an identity
# policy statement of the module may grant on "*".
STAR_ONLY_ACTIONS = {
    # A VPC Lambda's network interfaces (Lambda manages them with the function's role).
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    # ECR's registry token.
    "ecr:GetAuthorizationToken",
} | TRACING_ACTIONS | LOGGING_ACTIONS

# What each kind of state makes Step Functions call with the state machine's role.
TASK_ACTIONS = {
    "arn:aws:states:::lambda:invoke": {"lambda:InvokeFunction"},
    "arn:aws:states:::lambda:invoke.waitForTaskToken": {"lambda:InvokeFunction"},
    "arn:aws:states:::ecs:runTask": {"ecs:RunTask", "iam:PassRole"},
    "arn:aws:states:::ecs:runTask.sync": {
        "ecs:RunTask",
        "ecs:StopTask",
        "ecs:DescribeTasks",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
        "iam:PassRole",
    },
}
ITEM_READER_ACTIONS = {
    "arn:aws:states:::s3:getObject": {"s3:GetObject"},
    "arn:aws:states:::s3:listObjectsV2": {"s3:ListBucket"},
}
DISTRIBUTED_MAP_ACTIONS = {"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}

# What the engine calls (pipelines/engine/storage.py, plugins/s3_*.py, plugins/files/, jobs.py, api.py).
ENGINE_S3_ACTIONS = {
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
}
LAMBDA_ONLY_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Scan",
    "events:PutEvents",
    "states:StartExecution",
}


# ----------------------------------------------------------------------------- HCL, parsed


# bc-python-hcl2 (checkov's fork) wraps every attribute value in a one-element list; python-hcl2
# does not. Blocks are lists of objects in both.
_WRAPPED = hcl2.loads('a = "x"\n').get("a") == ["x"]


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def attr(body: dict[str, Any], key: str, default: Any = None) -> Any:
    """An attribute's value (None when absent)."""
    if key not in body:
        return default
    value = body[key]
    if _WRAPPED and isinstance(value, list) and len(value) == 1:
        value = value[0]
    return _unquote(value)


def blocks(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The nested blocks named key."""
    found = body.get(key) or []
    return [b for b in found if isinstance(b, dict)]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [_unquote(v) for v in value] if isinstance(value, list) else [value]


class Module:
    """The top-level blocks of a folder's .tf files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[Path, str] = {}
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.modules: dict[str, dict[str, Any]] = {}
        self.providers: list[tuple[str, dict[str, Any]]] = []
        self.source_of: dict[tuple[str, str, str], Path] = {}
        for path in sorted(folder.glob("*.tf")):
            text = path.read_text(encoding="utf-8")
            self.files[path] = text
            doc = hcl2.loads(text)
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for entry in doc.get(kind, []):
                    for rtype, named in entry.items():
                        for name, body in named.items():
                            key = (_unquote(rtype), _unquote(name))
                            assert key not in target, f"{kind} {key} declared twice"
                            target[key] = body
                            self.source_of[(kind, *key)] = path
            for entry in doc.get("locals", []):
                self.locals.update({k: attr(entry, k) for k in entry if not k.startswith("__")})
            for entry in doc.get("variable", []):
                self.variables.update({_unquote(k): v for k, v in entry.items()})
            for entry in doc.get("output", []):
                self.outputs.update({_unquote(k): v for k, v in entry.items()})
            for entry in doc.get("module", []):
                self.modules.update({_unquote(k): v for k, v in entry.items()})
            for entry in doc.get("provider", []):
                self.providers.extend((_unquote(k), v) for k, v in entry.items())

    def strings(self) -> Iterator[tuple[str, str]]:
        """(where, text) for every string value in resources, data sources and locals."""

        def walk(where: str, value: Any) -> Iterator[tuple[str, str]]:
            if isinstance(value, str):
                yield where, value
            elif isinstance(value, list):
                for item in value:
                    yield from walk(where, item)
            elif isinstance(value, dict):
                for key, item in value.items():
                    yield from walk(f"{where}.{key}", item)

        for (rtype, name), body in self.resources.items():
            yield from walk(f"{rtype}.{name}", body)
        for (rtype, name), body in self.data.items():
            yield from walk(f"data.{rtype}.{name}", body)
        for name, value in self.locals.items():
            yield from walk(f"local.{name}", value)


@pytest.fixture(scope="module")
def module() -> Module:
    return Module(TERRAFORM)


@pytest.fixture(scope="module")
def example() -> Module:
    return Module(EXAMPLE)


def ref(expression: Any) -> str:
    """`${aws_iam_role.task.arn}` -> `aws_iam_role.task.arn` (the expression of a plain reference)."""
    text = str(expression).strip()
    match = re.fullmatch(r"\$\{(.*)\}", text, re.S)
    return (match.group(1) if match else text).strip()


# ----------------------------------------------------------------------------- templatefile() calls


def _balanced(text: str, start: int) -> int:
    """The index just past the bracket that closes the one at text[start]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[text[start]]]
    i = start + 1
    quote = None
    while i < len(text) and stack:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in pairs:
            stack.append(pairs[ch])
        elif ch == stack[-1]:
            stack.pop()
        i += 1
    assert not stack, f"unbalanced brackets in {text!r}"
    return i


def _top_level_split(text: str) -> list[str]:
    """text split at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, None, []
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text):
                current.append(ch + text[i + 1])
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def templatefile_calls(text: str) -> list[tuple[str, dict[str, str]]]:
    """(path expression, {key: value expression}) of each templatefile(path, {...}) in an expression."""
    calls = []
    for match in re.finditer(r"\btemplatefile\s*\(", text):
        open_paren = match.end() - 1
        inner = text[open_paren + 1 : _balanced(text, open_paren) - 1]
        args = _top_level_split(inner)
        assert len(args) == 2, f"templatefile() takes a path and an object: {inner!r}"
        path, values = args[0].strip(), args[1].strip()
        assert values.startswith("{") and values.endswith("}"), f"templatefile()'s values must be an object literal: {values!r}"
        entries = {}
        for entry in _top_level_split(values[1:-1]):
            key, sep, value = re.split(r"\s*([:=])\s*", entry.strip(), maxsplit=1)
            entries[key.strip("'\" ")] = value.strip().strip("'")
        calls.append((path, entries))
    return calls


@pytest.fixture(scope="module")
def rendered_files(module: Module) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """The repository files the module renders -> [(where, values)], by file stem."""
    statemachine_local = str(module.locals.get("statemachine_path"))
    workflow_local = str(module.locals.get("workflow_dir"))
    assert "../statemachine.json" in statemachine_local, f"local.statemachine_path must default to the repository's statemachine.json: {statemachine_local}"
    assert "../workflow" in workflow_local, f"local.workflow_dir must default to the repository's workflow/: {workflow_local}"
    found: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for where, text in module.strings():
        for path, values in templatefile_calls(text):
            if "local.statemachine_path" in path:
                stem = "statemachine"
            else:
                named = re.search(r"local\.workflow_dir\}?/([A-Za-z0-9_]+)\.json", path)
                assert named, f"{where}: templatefile() of an unexpected file {path!r}"
                stem = named.group(1)
            found.setdefault(stem, []).append((where, values))
    return found


def test_every_tf_file_parses() -> None:
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 12 and any(EXAMPLE in f.parents for f in files)
    for path in files:
        if ".terraform" in path.parts:
            continue
        parsed = hcl2.loads(path.read_text(encoding="utf-8"))
        assert parsed, f"{path} parsed to nothing"


def test_module_layout(module: Module) -> None:
    names = {p.name for p in TERRAFORM.glob("*.tf")}
    for required in ("versions.tf", "variables.tf", "outputs.tf", "ecs.tf", "lambda.tf", "stepfunctions.tf", "events.tf", "api.tf", "iam.tf", "storage.tf"):
        assert required in names, f"terraform/{required} is missing"
    assert (TERRAFORM / "README.md").is_file() and (EXAMPLE / "main.tf").is_file() and (EXAMPLE / "versions.tf").is_file()
    for name, body in module.variables.items():
        assert attr(body, "type") is not None, f"variable {name} has no type"
        assert len(str(attr(body, "description") or "")) > 10, f"variable {name} has no description"
    for name, body in module.outputs.items():
        assert attr(body, "description"), f"output {name} has no description"
    readme = (TERRAFORM / "README.md").read_text(encoding="utf-8")
    for name in list(module.variables) + list(module.outputs):
        assert f"`{name}`" in readme, f"terraform/README.md does not document {name}"


# ----------------------------------------------------------------------------- placeholders


def test_statemachine_placeholders_are_exactly_what_terraform_passes(rendered_files: dict[str, Any]) -> None:
    calls = rendered_files.get("statemachine", [])
    assert len(calls) == 1, f"statemachine.json must be rendered by exactly one templatefile() call, found {calls}"
    where, values = calls[0]
    assert where.startswith("aws_sfn_state_machine."), f"statemachine.json is rendered in {where}, not the state machine's definition"
    in_file = workflow.placeholders_in(workflow.statemachine_path().read_text(encoding="utf-8"))
    assert set(values) == in_file, f"templatefile passes {sorted(values)}, statemachine.json holds {sorted(in_file)}"
    assert set(values) == set(workflow.PLACEHOLDERS)


def test_trigger_placeholders_are_exactly_what_terraform_passes(rendered_files: dict[str, Any]) -> None:
    assert set(rendered_files) == {"statemachine", *triggers.PLACEHOLDERS}, f"rendered files: {sorted(rendered_files)}"
    for name, expected in triggers.PLACEHOLDERS.items():
        in_file = triggers.placeholders_in(triggers.trigger_path(name).read_text(encoding="utf-8"))
        assert set(expected) == in_file
        for where, values in rendered_files[name]:
            assert set(values) == in_file, f"{where}: templatefile of workflow/{name}.json passes {sorted(values)}, the file holds {sorted(in_file)}"


def test_statemachine_values(module: Module, rendered_files: dict[str, Any]) -> None:
    (_, values), = rendered_files["statemachine"]
    assert ref(values["function_arn"]) == "aws_lambda_function.engine.arn"
    assert ref(values["cluster_arn"]) == "aws_ecs_cluster.this.arn"
    assert ref(values["task_definition_arn"]) == "aws_ecs_task_definition.shard.arn"
    # statemachine.json splits them with States.StringSplit('${subnet_ids}', ','): comma-joined, no spaces.
    template = workflow.statemachine_path().read_text(encoding="utf-8")
    for key, variable in (("subnet_ids", "subnet_ids"), ("security_group_ids", "security_group_ids")):
        assert f"States.StringSplit('${{{key}}}', ',')" in template
        assert re.fullmatch(rf"""\$\{{join\(\s*["']?,["']?\s*,\s*var\.{variable}\s*\)\}}""", values[key]), values[key]
    for key in ("max_concurrency", "small_job_bytes"):
        assert f"States.StringToJson('${{{key}}}')" in template
        assert ref(values[key]) == f"tostring(var.{key})"
    sfn = module.resources[("aws_sfn_state_machine", "this")]
    assert ref(attr(sfn, "role_arn")) == "aws_iam_role.state_machine.arn"


def test_drop_rules_target_the_lambda_with_the_trigger_task(module: Module) -> None:
    rule = module.resources[("aws_cloudwatch_event_rule", "s3_drop")]
    target = module.resources[("aws_cloudwatch_event_target", "s3_drop")]
    assert attr(rule, "event_bus_name") == "default"
    assert ref(attr(target, "arn")) == "aws_lambda_function.engine.arn"
    (transformer,) = blocks(target, "input_transformer")
    assert "local.s3_drop_input" in str(attr(transformer, "input_template"))
    rendered = triggers.render_trigger("s3_drop_input", {"pipeline": "send_audience_to_kafka"})
    assert json.loads(rendered["InputTemplate"].replace("<object>", "{}").replace("<bucket>", "b").replace("<key>", "k"))["task"] == "trigger"
    notification = module.resources[("aws_s3_bucket_notification", "data")]
    assert attr(notification, "eventbridge") is True
    permission = module.resources[("aws_lambda_permission", "s3_drop")]
    assert attr(permission, "principal") == "events.amazonaws.com"


def test_schedules_target_the_lambda(module: Module) -> None:
    schedule = module.resources[("aws_scheduler_schedule", "export")]
    (target,) = blocks(schedule, "target")
    assert ref(attr(target, "arn")) == "aws_lambda_function.engine.arn"
    assert ref(attr(target, "role_arn")) == "aws_iam_role.scheduler.arn"
    scheduler_docs = role_documents(module)["scheduler"]
    assert "lambda:InvokeFunction" in allowed_actions(module, scheduler_docs)
    assert "export_audience_to_s3" in json.dumps(module.variables["scheduled_exports"]), "the default scheduled export is export_audience_to_s3"


def test_api_routes_use_iam_and_the_lambda(module: Module) -> None:
    from pipelines.aws.api import ROUTES

    route = module.resources[("aws_apigatewayv2_route", "engine")]
    keys = set(re.findall(r"(?:GET|POST|PUT|DELETE|PATCH) /[A-Za-z0-9/{}_-]*", str(attr(route, "for_each"))))
    expected = {f"{method} {path}" for path, methods in ROUTES.items() for method in methods}
    assert keys == expected, f"routes {sorted(keys)}, pipelines.aws.api.ROUTES has {sorted(expected)}"
    assert attr(route, "authorization_type") == "AWS_IAM"
    integration = module.resources[("aws_apigatewayv2_integration", "engine")]
    assert attr(integration, "integration_type") == "AWS_PROXY"
    assert attr(integration, "payload_format_version") == "2.0"
    assert "aws_lambda_function.engine" in str(attr(integration, "integration_uri"))
    stage = module.resources[("aws_apigatewayv2_stage", "default")]
    (logs,) = blocks(stage, "access_log_settings")
    assert ref(attr(logs, "destination_arn")) == "aws_cloudwatch_log_group.api.arn"


def test_jobs_table_matches_the_job_store(module: Module) -> None:
    import inspect

    from pipelines.aws import jobs

    table = module.resources[("aws_dynamodb_table", "jobs")]
    assert attr(table, "hash_key") == "job_id" and attr(table, "range_key") is None
    assert [(attr(a, "name"), attr(a, "type")) for a in blocks(table, "attribute")] == [("job_id", "S")]
    assert '{"AttributeName": "job_id", "KeyType": "HASH"}' in inspect.getsource(jobs.create_table)
    assert attr(blocks(table, "point_in_time_recovery")[0], "enabled") is True
    assert attr(blocks(table, "server_side_encryption")[0], "enabled") is True


def test_bucket_lifecycle(module: Module) -> None:
    lifecycle = module.resources[("aws_s3_bucket_lifecycle_configuration", "data")]
    rules = blocks(lifecycle, "rule")
    prefixes = {str(attr(f, "prefix")) for r in rules for f in blocks(r, "filter")}
    assert "${local.jobs_prefix}" in prefixes and "${local.errors_prefix}" in prefixes
    assert module.locals["jobs_prefix"] == "_jobs/" and module.locals["errors_prefix"] == "_errors/"
    assert any(blocks(r, "abort_incomplete_multipart_upload") for r in rules)
    assert attr(blocks(module.resources[("aws_s3_bucket_versioning", "data")], "versioning_configuration")[0], "status") == "Enabled"
    access = module.resources[("aws_s3_bucket_public_access_block", "data")]
    assert all(attr(access, k) is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))


# ----------------------------------------------------------------------------- environment


def _environment_names(module: Module, expression: Any) -> set[str]:
    """The variable names an environment expression sets: a literal map's keys, or the keys of the
    map-valued locals it references (merge(local.a, local.b), a for over local.a)."""
    if isinstance(expression, dict):
        return set(expression)
    names: set[str] = set()
    for local in re.findall(r"\blocal\.([A-Za-z0-9_]+)", str(expression)):
        value = module.locals.get(local)
        if isinstance(value, dict):
            names |= set(value)
    return names


def test_task_definition_environment_is_the_engines(module: Module, rendered_files: dict[str, Any]) -> None:
    task = module.resources[("aws_ecs_task_definition", "shard")]
    containers = str(attr(task, "container_definitions"))
    environment = re.search(r"""['"]?environment['"]?\s*[:=]\s*(.*?)['"]?mountPoints""", containers, re.S)
    assert environment, f"no environment in the container definition: {containers}"
    assert _environment_names(module, environment.group(1)) == deployment.task_environment()
    assert not (deployment.task_environment() & set(deployment.PER_RUN_ENV)) and not (set(deployment.OPTIONAL_ENV) & _environment_names(module, containers))
    assert re.search(r"""['"]?stopTimeout['"]?\s*[:=]\s*30\b""", containers), "the container's stopTimeout must be 30"
    assert re.search(r"""['"]?logDriver['"]?\s*[:=]\s*['"]awslogs['"]""", containers), "the container must log with awslogs"
    # As tests/test_image.py runs the image: read-only root, /tmp the one writable place, the image's user.
    assert re.search(r"""['"]?readonlyRootFilesystem['"]?\s*[:=]\s*[Tt]rue\b""", containers), "the root file system must be read-only"
    assert re.search(r"""['"]?containerPath['"]?\s*[:=]\s*['"]/tmp['"]""", containers), "/tmp must be a writable volume"
    assert not re.search(r"""['"]?user['"]?\s*[:=]""", containers), "the image's user (10001), not another"
    # The container the state machine overrides is the task definition's.
    (_, values), = rendered_files["statemachine"]
    name = re.search(r"""['"]?name['"]?\s*[:=]\s*['"](\$\{[^}]+\})['"]""", containers)
    assert name and name.group(1) == values["container_name"] == "${var.container_name}"
    assert attr(task, "requires_compatibilities") == ["FARGATE"] and attr(task, "network_mode") == "awsvpc"
    assert ref(attr(task, "task_role_arn")) == "aws_iam_role.task.arn"
    assert ref(attr(task, "execution_role_arn")) == "aws_iam_role.task_execution.arn"


def test_lambda_environment_is_the_engines(module: Module) -> None:
    function = module.resources[("aws_lambda_function", "engine")]
    (environment,) = blocks(function, "environment")
    assert _environment_names(module, attr(environment, "variables")) == deployment.lambda_environment()
    assert attr(function, "package_type") == "Image" and ref(attr(function, "image_uri")) == "var.image_uri"
    (vpc,) = blocks(function, "vpc_config")
    assert ref(attr(vpc, "subnet_ids")) == "var.subnet_ids" and ref(attr(vpc, "security_group_ids")) == "var.security_group_ids"
    assert attr(blocks(function, "tracing_config")[0], "mode") == "Active"


# ----------------------------------------------------------------------------- IAM


def statements(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy document's statements: its statement blocks, then its dynamic ones' content."""
    found = list(blocks(body, "statement"))
    for dynamic in blocks(body, "dynamic"):
        for label, inner in dynamic.items():
            if _unquote(label) == "statement":
                found.extend(blocks(inner, "content"))
    return found


def role_documents(module: Module) -> dict[str, list[str]]:
    """role name -> the policy documents attached to it (aws_iam_role_policy)."""
    attached: dict[str, list[str]] = {}
    for (rtype, name), body in module.resources.items():
        if rtype == "aws_iam_policy" or rtype == "aws_iam_role_policy_attachment":
            pytest.fail(f"{rtype}.{name}: the module attaches inline policies from aws_iam_policy_document only")
        if rtype != "aws_iam_role_policy":
            continue
        role = re.fullmatch(r"aws_iam_role\.([A-Za-z0-9_]+)\.(id|name)", ref(attr(body, "role")))
        document = re.fullmatch(r"data\.aws_iam_policy_document\.([A-Za-z0-9_]+)(\[0\])?\.json", ref(attr(body, "policy")))
        assert role and document, f"aws_iam_role_policy.{name} must attach a data.aws_iam_policy_document to an aws_iam_role"
        attached.setdefault(role.group(1), []).append(document.group(1))
    return attached


def allowed(module: Module, documents: list[str]) -> list[tuple[set[str], list[str]]]:
    """(actions, resources) of every Allow statement in the documents."""
    found = []
    for name in documents:
        for statement in statements(module.data[("aws_iam_policy_document", name)]):
            if attr(statement, "effect", "Allow") == "Allow":
                found.append((set(as_list(attr(statement, "actions"))), [str(r) for r in as_list(attr(statement, "resources"))]))
    return found


def allowed_actions(module: Module, documents: list[str]) -> set[str]:
    return set().union(*(actions for actions, _ in allowed(module, documents))) if documents else set()


def resources_for(module: Module, documents: list[str], action: str) -> list[str]:
    return [r for actions, resources in allowed(module, documents) if action in actions for r in resources]


def workflow_actions(definition: dict[str, Any]) -> set[str]:
    """The actions Step Functions performs with the role to run these states (recursively)."""
    needed: set[str] = set()
    for name, state in definition["States"].items():
        kind = state["Type"]
        if kind == "Task":
            resource = state["Resource"]
            assert resource in TASK_ACTIONS, f"state {name}: teach tests/test_terraform.py the IAM actions of {resource}"
            needed |= TASK_ACTIONS[resource]
        elif kind == "Map":
            reader = state.get("ItemReader")
            if reader:
                assert reader["Resource"] in ITEM_READER_ACTIONS, f"state {name}: teach the test the ItemReader {reader['Resource']}"
                needed |= ITEM_READER_ACTIONS[reader["Resource"]]
            assert "ResultWriter" not in state, f"state {name}: teach the test the ResultWriter's actions"
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED":
                needed |= DISTRIBUTED_MAP_ACTIONS
            needed |= workflow_actions(processor)
        elif kind == "Parallel":
            for branch in state["Branches"]:
                needed |= workflow_actions(branch)
    return needed


def test_workflow_actions_are_derived_from_the_definition() -> None:
    definition = json.loads(workflow.statemachine_path().read_text(encoding="utf-8"))
    needed = workflow_actions(definition)
    assert {"lambda:InvokeFunction", "ecs:RunTask", "iam:PassRole", "s3:GetObject", "states:StartExecution"} <= needed


def test_state_machine_role_allows_every_action_of_the_workflow(module: Module, rendered_files: dict[str, Any]) -> None:
    definition = json.loads(workflow.statemachine_path().read_text(encoding="utf-8"))
    needed = workflow_actions(definition)
    sfn = module.resources[("aws_sfn_state_machine", "this")]
    if blocks(sfn, "logging_configuration"):
        needed |= LOGGING_ACTIONS
    if any(attr(t, "enabled") is True for t in blocks(sfn, "tracing_configuration")):
        needed |= TRACING_ACTIONS
    documents = role_documents(module)["state_machine"]
    missing = needed - allowed_actions(module, documents)
    assert not missing, f"the state machine's role does not allow {sorted(missing)}"

    # ... on the resources the definition names.
    (_, values), = rendered_files["statemachine"]
    function = ref(values["function_arn"])
    assert {f"${{{function}}}", f"${{{function}}}:*"} <= set(resources_for(module, documents, "lambda:InvokeFunction"))
    task = module.resources[("aws_ecs_task_definition", "shard")]
    assert ref(attr(task, "family")) == "local.task_family" and module.locals["task_family_arn"].endswith("task-definition/${local.task_family}:*")
    assert resources_for(module, documents, "ecs:RunTask") == ["${local.task_family_arn}"]
    passed = set(resources_for(module, documents, "iam:PassRole"))
    assert passed == {str(attr(task, "task_role_arn")), str(attr(task, "execution_role_arn"))}, passed
    pass_role = [s for name in documents for s in statements(module.data[("aws_iam_policy_document", name)]) if "iam:PassRole" in as_list(attr(s, "actions"))]
    assert all(attr(c, "variable") == "iam:PassedToService" and as_list(attr(c, "values")) == ["ecs-tasks.amazonaws.com"] for s in pass_role for c in blocks(s, "condition"))
    assert resources_for(module, documents, "events:PutRule") == ["${local.ecs_sync_rule_arn}"]
    assert module.locals["ecs_sync_rule_arn"].endswith(":rule/StepFunctionsGetEventsForECSTaskRule")
    assert resources_for(module, documents, "s3:GetObject") == ["${aws_s3_bucket.data.arn}/${local.jobs_prefix}*"]
    assert resources_for(module, documents, "states:StartExecution") == ["${local.state_machine_arn}"]
    assert module.locals["state_machine_arn"].endswith(":stateMachine:${local.state_machine_name}")
    assert ref(attr(sfn, "name")) == "local.state_machine_name"


def test_engine_roles_allow_what_the_engine_calls(module: Module) -> None:
    roles = role_documents(module)
    for role in ("task", "lambda"):
        missing = ENGINE_S3_ACTIONS - allowed_actions(module, roles[role])
        assert not missing, f"the {role} role does not allow {sorted(missing)}"
    missing = LAMBDA_ONLY_ACTIONS - allowed_actions(module, roles["lambda"])
    assert not missing, f"the Lambda role does not allow {sorted(missing)}"
    assert resources_for(module, roles["lambda"], "states:StartExecution") == ["${local.state_machine_arn}"]
    assert resources_for(module, roles["lambda"], "dynamodb:UpdateItem") == ["${aws_dynamodb_table.jobs.arn}"]
    # A shard adds its counts to its job's item (pipelines/aws/progress.py), and does nothing else with the table.
    task_dynamodb = {a for a in allowed_actions(module, roles["task"]) if a.startswith("dynamodb:")}
    assert task_dynamodb == {"dynamodb:UpdateItem"}, task_dynamodb
    assert resources_for(module, roles["task"], "dynamodb:UpdateItem") == ["${aws_dynamodb_table.jobs.arn}"]
    assert "${aws_kms_key.this.arn}" in resources_for(module, roles["task"], "kms:GenerateDataKey")
    # Kafka credentials: the same documents for both roles, attached per kafka_auth.
    policies = {name: body for (rtype, name), body in module.resources.items() if rtype == "aws_iam_role_policy"}
    for role in ("task", "lambda"):
        for auth, document in (("scram", "kafka_scram"), ("msk_iam", "kafka_msk_iam")):
            attached = [b for b in policies.values() if ref(attr(b, "role")) == f"aws_iam_role.{role}.id" and document in str(attr(b, "policy"))]
            assert len(attached) == 1 and f'"{auth}"' in str(attr(attached[0], "count")), f"the {role} role must get {document} when kafka_auth = {auth}"
    scram = statements(module.data[("aws_iam_policy_document", "kafka_scram")])
    assert [as_list(attr(s, "resources")) for s in scram if "secretsmanager:GetSecretValue" in as_list(attr(s, "actions"))] == [["${var.kafka_sasl_secret_arn}"]]
    msk = allowed_actions(module, ["kafka_msk_iam"])
    assert {
        "kafka-cluster:Connect",
        "kafka-cluster:DescribeCluster",
        "kafka-cluster:WriteData",
        "kafka-cluster:ReadData",
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:AlterGroup",
        "kafka-cluster:DescribeGroup",
        "kafka-cluster:DescribeTransactionalId",
        "kafka-cluster:AlterTransactionalId",
    } <= msk


def _statement_lines(text: str, start_line: int, end_line: int) -> list[int]:
    """The (1-based) lines of `statement {` in a block, in order."""
    lines = text.splitlines()
    return [n for n in range(start_line, end_line + 1) if re.match(r"\s*statement\s*\{", lines[n - 1])]


def test_no_star_resources_beyond_the_allow_list(module: Module) -> None:
    attached = {doc for docs in role_documents(module).values() for doc in docs}
    checked = 0
    for (rtype, name), body in module.data.items():
        if rtype != "aws_iam_policy_document":
            continue
        all_statements = statements(body)
        resource_policy = all(blocks(s, "principals") for s in all_statements)
        if resource_policy:
            # A key, bucket or queue policy, or a trust policy: "*" there is the resource itself.
            assert name not in attached, f"data.aws_iam_policy_document.{name} has principals but is attached to a role"
            continue
        assert name in attached, f"data.aws_iam_policy_document.{name} is attached to no role"
        path = module.source_of[("data", rtype, name)]
        lines = module.files[path].splitlines()
        statement_lines = _statement_lines(module.files[path], body["__start_line__"], body["__end_line__"]) if "__start_line__" in body else []
        for index, statement in enumerate(blocks(body, "statement")):
            resources = as_list(attr(statement, "resources"))
            assert resources, f"data.aws_iam_policy_document.{name}: a statement without resources"
            assert not blocks(statement, "not_resources") and attr(statement, "not_resources") is None
            if "*" not in resources:
                continue
            checked += 1
            actions = set(as_list(attr(statement, "actions")))
            assert resources == ["*"], f"data.aws_iam_policy_document.{name}: mix '*' with nothing"
            assert actions <= STAR_ONLY_ACTIONS, f"data.aws_iam_policy_document.{name} grants {sorted(actions - STAR_ONLY_ACTIONS)} on '*'"
            assert len(statement_lines) == len(blocks(body, "statement")), f"cannot locate the statements of {name} in {path.name}"
            above = lines[statement_lines[index] - 2].strip()
            assert above.startswith("#"), f"data.aws_iam_policy_document.{name}: the '*' statement ({sorted(actions)}) needs a comment above it saying why"
        for statement in statements(body):
            for action in as_list(attr(statement, "actions")):
                assert "*" not in action or action.endswith(("Describe*", "Get*", "List*")), f"{name}: wildcard action {action}"
    assert checked >= 1


# ----------------------------------------------------------------------------- the example


def test_example_calls_the_module_with_its_variables(module: Module, example: Module) -> None:
    (call,) = example.modules.values()
    assert attr(call, "source") == "../.."
    given = {k for k in call if not k.startswith("__") and k not in ("source", "version", "providers", "depends_on", "count", "for_each")}
    unknown = given - set(module.variables)
    assert not unknown, f"examples/complete passes {sorted(unknown)}, which the module does not declare"
    required = {name for name, body in module.variables.items() if "default" not in body}
    assert required <= given, f"examples/complete does not pass the required {sorted(required - given)}"
    providers = dict(example.providers)
    assert "aws" in providers and blocks(providers["aws"], "default_tags"), "the example's provider sets default_tags"
    assert (EXAMPLE / "versions.tf").is_file() and (EXAMPLE / "outputs.tf").is_file()


# ----------------------------------------------------------------------------- tools


def _terraform_env() -> dict[str, str]:
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_INPUT="0")
    env.pop("TF_DATA_DIR", None)
    config = env.get("TF_CLI_CONFIG_FILE")
    if config and not Path(config).is_file():
        env["TF_CLI_CONFIG_FILE"] = os.devnull  # a missing file only earns a warning on every command
    return env


def _plugin_dir() -> Path | None:
    """A local folder of provider plugins holding hashicorp/aws (no provider can be downloaded here)."""
    candidates = [os.environ.get("PIPELINES_TF_PLUGIN_DIR"), "~/.terraform.d/plugins", "~/.local/share/terraform/plugins", "/usr/share/terraform/plugins", "/opt/tf-plugins"]
    for candidate in candidates:
        if not candidate:
            continue
        folder = Path(candidate).expanduser()
        if any(folder.glob("*/hashicorp/aws/*/*/terraform-provider-aws*")):
            return folder
    return None


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def terraform_bin() -> str:
    found = shutil.which("terraform")
    if not found:
        pytest.skip(
            "no terraform binary on PATH (none can be installed from this machine's package registries); "
            "the .tf files are written in terraform fmt's canonical style by hand"
        )
    return found


@pytest.fixture(scope="module")
def terraform_copy(tmp_path_factory: pytest.TempPathFactory, terraform_bin: str) -> Path:
    """terraform/ with statemachine.json and workflow/ beside it (as the module expects), initialised
    against the local provider plugins, in a temporary folder."""
    plugins = _plugin_dir()
    if plugins is None:
        pytest.skip("no local copy of the hashicorp/aws provider (set PIPELINES_TF_PLUGIN_DIR): terraform init cannot download one here")
    root = tmp_path_factory.mktemp("tf")
    shutil.copytree(TERRAFORM, root / "terraform", ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    shutil.copy(ROOT / "statemachine.json", root / "statemachine.json")
    shutil.copytree(ROOT / "workflow", root / "workflow")
    env = _terraform_env()
    for folder in (root / "terraform", root / "terraform" / "examples" / "complete"):
        proc = _run([terraform_bin, "init", "-backend=false", "-input=false", "-no-color", f"-plugin-dir={plugins}"], folder, env)
        assert proc.returncode == 0, f"terraform init in {folder.name}:\n{proc.stdout}\n{proc.stderr}"
    return root


@pytest.fixture(scope="module")
def checkov_run() -> Iterator[subprocess.Popen[str]]:
    """checkov over terraform/ (the module and the example), started once and in the background:
    it takes several seconds, the terraform tests run meanwhile."""
    checkov = shutil.which("checkov", path=str(ROOT / ".tools" / "checkov" / "bin")) or shutil.which("checkov")
    if checkov is None:
        pytest.fail("checkov is missing: bin/setup installs it into .tools/checkov (an environment of its own)")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false", LOG_LEVEL="ERROR")
    args = [checkov, "-d", str(TERRAFORM), "--framework", "terraform", "--compact", "--skip-download", "--output", "json"]
    with subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        yield proc
        if proc.poll() is None:
            proc.kill()


def test_start_checkov(checkov_run: subprocess.Popen[str]) -> None:
    """Starts checkov early (the check itself is the last test of this file)."""
    assert checkov_run.pid


def test_terraform_fmt(terraform_bin: str) -> None:
    proc = _run([terraform_bin, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM)], ROOT, _terraform_env())
    assert proc.returncode == 0, f"terraform fmt -check -recursive terraform/ found differences:\n{proc.stdout}\n{proc.stderr}"


def test_terraform_validate(terraform_bin: str, terraform_copy: Path) -> None:
    env = _terraform_env()
    for folder in (terraform_copy / "terraform", terraform_copy / "terraform" / "examples" / "complete"):
        proc = _run([terraform_bin, "validate", "-no-color"], folder, env)
        assert proc.returncode == 0, f"terraform validate in {folder.name}:\n{proc.stdout}\n{proc.stderr}"


def test_terraform_test(terraform_bin: str, terraform_copy: Path) -> None:
    """terraform/tests/*.tftest.hcl: plans with a mocked provider (renders the real files)."""
    version = _run([terraform_bin, "version", "-json"], terraform_copy, _terraform_env())
    major, minor = (int(p) for p in json.loads(version.stdout)["terraform_version"].split(".")[:2])
    if (major, minor) < (1, 11):
        pytest.skip(f"terraform test with override_during needs Terraform >= 1.11, this is {major}.{minor}")
    proc = _run([terraform_bin, "test", "-no-color"], terraform_copy / "terraform", _terraform_env())
    assert proc.returncode == 0, f"terraform test:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def test_checkov_finds_nothing(checkov_run: subprocess.Popen[str]) -> None:
    stdout, stderr = checkov_run.communicate(timeout=300)
    assert checkov_run.returncode in (0, 1), f"checkov crashed ({checkov_run.returncode}):\n{stderr[-3000:]}"
    reports = json.loads(stdout)
    reports = reports if isinstance(reports, list) else [reports]
    (report,) = [r for r in reports if r.get("check_type") == "terraform"]
    summary = report["summary"]
    results = report["results"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in results.get("failed_checks", [])]
    print(f"checkov: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped, {summary['parsing_errors']} parsing errors")
    assert summary["parsing_errors"] == 0
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert summary["passed"] > 100, summary
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) >= 20, f"checkov skip {check['check_id']} on {check['resource']} needs a written reason, not {reason!r}"
