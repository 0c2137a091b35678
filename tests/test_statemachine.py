"""statemachine.json, checked without AWS: JSON, the ASL validator, the placeholders, and a dry run.

- statelint (PyPI, in the test extra) lints the template and the rendered definition, in a
  subprocess; its one known false positive (ReaderConfig.InputType) is the only message allowed.
- The placeholders are exactly pipelines.aws.workflow.PLACEHOLDERS, and render like templatefile.
- A small JSONPath evaluator (the intrinsic functions the file uses, Parameters/ItemSelector
  templates, ResultSelector/ResultPath/OutputPath, Choice rules) walks the workflow with the Lambda
  handler's documented payloads and results: every path a state reads must exist where it reads
  it, so a renamed field fails here instead of in the first execution on AWS.

Fast: two statelint runs (~0.5 s each), the rest is pure Python.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.aws.workflow import PLACEHOLDERS, placeholders_in, render_definition, statemachine_path

SAMPLE_VALUES = {
    "function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:audience-pipelines",
    "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/audience-pipelines",
    "task_definition_arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/audience-pipelines:7",
    "container_name": "engine",
    "subnet_ids": "subnet-0aaa,subnet-0bbb",
    "security_group_ids": "sg-0ccc",
    "max_concurrency": "20",
    "small_job_bytes": "67108864",
}
SAMPLE_INPUT = {
    "job_id": "job-123",
    "pipeline": "send_audience_to_kafka",
    "params": {"S3_BUCKET": "audiences", "S3_KEY": "drops/2024-01-01/", "SEGMENT_ID": "42"},
}
LAMBDA_TASKS = {"status", "plan", "run_shard", "finish", "abort"}
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException"}
# statelint 3.1.0 does not know ReaderConfig.InputType (JSON | CSV | MANIFEST | JSONL | PARQUET, a
# valid ItemReader field on AWS) and reports it. This exact message is the only one tolerated.
STATELINT_FALSE_POSITIVES = {'Field "InputType" not allowed in State Machine.States.Shards.ItemReader.ReaderConfig'}


@pytest.fixture(scope="module")
def template() -> str:
    return statemachine_path().read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def definition(template: str) -> dict[str, Any]:
    return json.loads(template)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    return json.loads(render_definition(SAMPLE_VALUES))


# --- (a) JSON, (b) and (d) the validator, (c) placeholders -----------------------------------


def test_is_valid_json(template: str) -> None:
    doc = json.loads(template)
    assert isinstance(doc, dict) and doc["StartAt"] in doc["States"]
    assert "QueryLanguage" not in doc or doc["QueryLanguage"] == "JSONPath"


def statelint(path: Path) -> list[str]:
    """statelint's messages for the file (empty when it is clean), less the known false positive."""
    try:
        import statelint  # noqa: F401
    except ImportError:
        pytest.fail("statelint is missing: it is in the test extra (pip install -e '.[test]')")
    proc = subprocess.run([sys.executable, "-m", "statelint", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), f"statelint crashed: {proc.stderr}"
    # Output: "One error:" / "N errors:" then one indented line per problem.
    problems = [line.strip() for line in proc.stdout.splitlines() if line.startswith(" ")]
    assert proc.returncode == 0 or problems, f"statelint failed without naming a problem: {proc.stdout}{proc.stderr}"
    return [p for p in problems if p not in STATELINT_FALSE_POSITIVES]


def test_template_passes_statelint() -> None:
    assert statelint(statemachine_path()) == []


def test_rendered_definition_is_json_and_passes_statelint(tmp_path: Path) -> None:
    text = render_definition(SAMPLE_VALUES)
    doc = json.loads(text)
    assert not placeholders_in(text) and "${" not in text
    path = tmp_path / "statemachine.rendered.json"
    path.write_text(text, encoding="utf-8")
    assert statelint(path) == []
    # The values land where they belong.
    run_shard = doc["States"]["Shards"]["ItemProcessor"]["States"]["RunShard"]["Parameters"]
    assert run_shard["Cluster"] == SAMPLE_VALUES["cluster_arn"]
    assert run_shard["TaskDefinition"] == SAMPLE_VALUES["task_definition_arn"]
    assert run_shard["Overrides"]["ContainerOverrides"][0]["Name"] == "engine"


def test_statelint_catches_a_broken_definition(tmp_path: Path, definition: dict[str, Any]) -> None:
    """The validator is really run: a dangling Next is reported."""
    broken = json.loads(json.dumps(definition))
    broken["States"]["Plan"]["Next"] = "NoSuchState"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    assert any("NoSuchState" in p for p in statelint(path))


def test_placeholders_are_exactly_the_documented_ones(template: str) -> None:
    assert placeholders_in(template) == set(PLACEHOLDERS)
    # Nothing else templatefile would interpret: no other ${...}, no %{...} directive, no $${ escape.
    assert set(re.findall(r"\$\{([^}]*)\}", template)) == set(PLACEHOLDERS)
    assert "%{" not in template and "$${" not in template
    # Each placeholder sits inside a JSON string, so the template itself is valid JSON.
    for value in strings_in(json.loads(template)):
        for name in placeholders_in(value):
            assert name in PLACEHOLDERS


def test_render_definition_is_strict() -> None:
    with pytest.raises(ValueError, match="no value for small_job_bytes"):
        render_definition({k: v for k, v in SAMPLE_VALUES.items() if k != "small_job_bytes"})
    with pytest.raises(ValueError, match="no placeholder for region"):
        render_definition({**SAMPLE_VALUES, "region": "eu-west-1"})
    assert render_definition({"a": "x"}, template='{"v": "${a}", "w": "$${a}"}') == '{"v": "x", "w": "${a}"}'


# --- (e) catches, retries and Lambda payloads -------------------------------------------------


def top_level_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in definition["States"].items() if s["Type"] in ("Task", "Map", "Parallel")}


def test_every_step_but_mark_failed_catches_everything_into_mark_failed(definition: dict[str, Any]) -> None:
    """Before the plan exists a failure goes straight to MarkFailed; after, through AbortJob, which
    fences what the shards may hold open and whose own failure does not replace the job's error."""
    steps = top_level_tasks(definition)
    assert set(steps) == {"MarkRunning", "Plan", "RunInLambda", "Shards", "Finish", "MarkSucceeded", "AbortJob", "MarkFailed"}
    after_plan = {"RunInLambda", "Shards", "Finish"}
    for name, state in steps.items():
        if name == "MarkFailed":
            assert "Catch" not in state
            continue
        if name == "AbortJob":
            assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.abort_error", "Next": "MarkFailed"}]
            assert state["Next"] == "MarkFailed" and state["ResultPath"] is None
            continue
        target = "AbortJob" if name in after_plan else "MarkFailed"
        assert state.get("Catch") == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": target}], name
    assert definition["States"]["MarkFailed"]["Next"] == "Failed"
    failed = definition["States"]["Failed"]
    assert (failed["Type"], failed["ErrorPath"], failed["CausePath"]) == ("Fail", "$.error.Error", "$.error.Cause")


def lambda_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in definition["States"].items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"}


def test_lambda_tasks_name_a_known_task_and_retry_lambda_errors(definition: dict[str, Any]) -> None:
    states = lambda_states(definition)
    assert set(states) == {"MarkRunning", "Plan", "RunInLambda", "Finish", "MarkSucceeded", "AbortJob", "MarkFailed"}
    for name, state in states.items():
        params = state["Parameters"]
        assert params["FunctionName"] == "${function_arn}", name
        assert params["Payload"]["task"] in LAMBDA_TASKS, name
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert LAMBDA_ERRORS <= retried, name
        assert all(r["MaxAttempts"] >= 1 and r["BackoffRate"] >= 1 for r in state["Retry"]), name
    transient = next(r for r in states["RunInLambda"]["Retry"] if "TransientRunError" in r["ErrorEquals"])
    assert transient["IntervalSeconds"] > 0 and transient["BackoffRate"] > 1


def test_the_shard_task_retries_what_may_pass(definition: dict[str, Any]) -> None:
    """ECS's own API errors are retried by the task; every other failure is caught and classified by
    the shard's exit code (see the dry runs below), within the shard's timeout from shards.json."""
    shards = definition["States"]["Shards"]
    assert shards["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert shards["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert shards["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert shards["ResultPath"] is None and "ResultWriter" not in shards
    assert shards["ItemSelector"]["timeout_seconds.$"] == "$$.Map.Item.Value.timeout_seconds"
    assert shards["ItemSelector"]["retry"] == {"attempt": 0}
    run_shard = shards["ItemProcessor"]["States"]["RunShard"]
    assert run_shard["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    assert run_shard["TimeoutSecondsPath"] == "$.timeout_seconds"
    assert run_shard["Retry"] == [
        {
            "ErrorEquals": ["ECS.AmazonECSException", "AmazonECS.Unknown"],
            "IntervalSeconds": 10,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL",
        }
    ]
    assert run_shard["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "ShardFailure?"}]


# --- (f) a dry run: every path a state reads exists ----------------------------------------


class Missing(AssertionError):
    pass


def get_path(path: str, data: Any, context: dict[str, Any]) -> Any:
    """A JSONPath reference path ($, $.a.b, $$.Map.Item.Value.x); a missing field raises Missing."""
    if path.startswith("$$"):
        root, rest = context, path[2:]
    elif path.startswith("$"):
        root, rest = data, path[1:]
    else:
        raise Missing(f"not a path: {path!r}")
    value = root
    for part in [p for p in rest.split(".") if p] if rest else []:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?", part)
        if not m:
            raise Missing(f"unsupported path syntax in {path!r}")
        if not isinstance(value, dict) or m.group(1) not in value:
            raise Missing(f"{path} does not exist in {json.dumps(value)[:300]}")
        value = value[m.group(1)]
        if m.group(2) is not None:
            if not isinstance(value, list) or int(m.group(2)) >= len(value):
                raise Missing(f"{path} does not exist in {json.dumps(value)[:300]}")
            value = value[int(m.group(2))]
    return value


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<fn>States\.[A-Za-z]+)(?=\s*\()|(?P<path>\$\$?(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?P<punct>[(),]))"
)


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            if expr[pos:].strip() == "":
                break
            raise Missing(f"cannot parse intrinsic function at {expr[pos:]!r} in {expr!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def unescape(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def states_format(template: str, *args: Any) -> str:
    parts = re.split(r"(?<!\\)\{\}", template)
    if len(parts) - 1 != len(args):
        raise Missing(f"States.Format: {len(parts) - 1} placeholders, {len(args)} arguments")
    out = parts[0]
    for arg, part in zip(args, parts[1:]):
        out += (arg if isinstance(arg, str) else json.dumps(arg)) + part
    return re.sub(r"\\(.)", r"\1", out)


INTRINSICS = {
    "States.Array": lambda *a: list(a),
    "States.Format": states_format,
    "States.StringToJson": lambda s: json.loads(s),
    "States.JsonToString": lambda v: json.dumps(v, separators=(",", ":")),
    "States.StringSplit": lambda s, sep: [p for p in re.split("[" + re.escape(sep) + "]", s) if p],
    "States.MathAdd": lambda a, b: a + b,
    "States.MathRandom": lambda start, end: end,  # the longest wait: deterministic
    "States.ArrayGetItem": lambda array, index: array[index],
}


def evaluate(expr: str, data: Any, context: dict[str, Any]) -> Any:
    """A JSONPath or an intrinsic function call (nested calls allowed), as Step Functions evaluates it."""
    if not expr.startswith("States."):
        return get_path(expr, data, context)
    tokens = tokenize(expr)
    pos = 0

    def parse() -> Any:
        nonlocal pos
        kind, text = tokens[pos]
        pos += 1
        if kind == "str":
            return unescape(text)
        if kind == "num":
            return json.loads(text)
        if kind == "path":
            return get_path(text, data, context)
        if kind != "fn":
            raise Missing(f"unexpected {text!r} in {expr!r}")
        if text not in INTRINSICS:
            raise Missing(f"unknown or unsupported intrinsic {text} in {expr!r}")
        if tokens[pos][1] != "(":
            raise Missing(f"{text} without arguments in {expr!r}")
        pos += 1
        args = []
        while tokens[pos][1] != ")":
            args.append(parse())
            if tokens[pos][1] == ",":
                pos += 1
            elif tokens[pos][1] != ")":
                raise Missing(f"expected , or ) in {expr!r}")
        pos += 1
        return INTRINSICS[text](*args)

    try:
        value = parse()
    except IndexError:
        raise Missing(f"unbalanced intrinsic function {expr!r}") from None
    if pos != len(tokens):
        raise Missing(f"trailing text in {expr!r}")
    return value


def resolve(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """A Parameters / ItemSelector / ResultSelector template: keys ending in .$ are evaluated."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = evaluate(value, data, context)
            else:
                out[key] = resolve(value, data, context)
        return out
    if isinstance(template, list):
        return [resolve(v, data, context) for v in template]
    return template


def put_result(result_path: Any, data: dict[str, Any], result: Any) -> Any:
    if result_path is None:
        return data
    if result_path == "$":
        return result
    m = re.fullmatch(r"\$\.([A-Za-z_][A-Za-z0-9_]*)", result_path)
    assert m, f"unsupported ResultPath {result_path}"
    return {**data, m.group(1): result}


def after(state: dict[str, Any], data: Any, result: Any, context: dict[str, Any]) -> Any:
    """The state's output from its raw result (ResultSelector, ResultPath, OutputPath)."""
    if "ResultSelector" in state:
        result = resolve(state["ResultSelector"], result, context)
    out = put_result(state.get("ResultPath", "$"), data, result)
    return get_path(state["OutputPath"], out, context) if "OutputPath" in state else out


def fake_lambda(payload: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The Lambda handler's contract (pipelines/aws/handler.py): required fields in, small results out."""
    required = {
        "status": {"job_id", "pipeline", "status"},
        "plan": {"job_id", "pipeline", "params"},
        "run_shard": {"job_id", "pipeline", "params", "plan_uri", "shard"},
        "finish": {"job_id", "pipeline", "params", "plan_uri"},
        "abort": {"job_id", "pipeline", "params", "plan_uri"},
    }[payload["task"]]
    assert required <= payload.keys(), f"{payload['task']} payload lacks {required - payload.keys()}"
    assert all(payload[k] not in (None, "") for k in required)
    if payload["task"] == "status":
        assert payload["status"] in {"RUNNING", "SUCCEEDED", "FAILED"}
        result: dict[str, Any] = {"job_id": payload["job_id"], "status": payload["status"]}
    elif payload["task"] == "plan":
        result = plan
    elif payload["task"] == "run_shard":
        result = {"shard": payload["shard"], "rows_written": 10, "rows_skipped": 0, "skipped": False}
    elif payload["task"] == "abort":
        result = {"aborted": True, "job_id": payload["job_id"], "shards": 3, "fenced": 4}
    else:
        result = {"rows_read": 12, "rows_written": 11, "rows_skipped": 1, "bytes_read": 340, "end_markers": 6, "manifest": None}
    return {"ExecutedVersion": "$LATEST", "Payload": result, "SdkHttpMetadata": {}, "StatusCode": 200}


def choose(state: dict[str, Any], data: Any) -> str:
    def holds(rule: dict[str, Any]) -> bool:
        if "And" in rule:
            return all(holds(r) for r in rule["And"])
        if "Or" in rule:
            return any(holds(r) for r in rule["Or"])
        if "Not" in rule:
            return not holds(rule["Not"])
        ((op, operand),) = ((k, v) for k, v in rule.items() if k not in ("Variable", "Next"))
        if op == "IsPresent":
            try:
                get_path(rule["Variable"], data, {})
            except Missing:
                return not operand
            return operand
        value = get_path(rule["Variable"], data, {})
        if op.endswith("Path"):
            op, operand = op[: -len("Path")], get_path(operand, data, {})
        if op.startswith("String"):
            assert isinstance(value, str) and isinstance(operand, str), rule
            return value == operand if op == "StringEquals" else re.fullmatch(re.escape(operand).replace(r"\*", ".*"), value, re.S) is not None
        compare = {
            "NumericEquals": lambda a, b: a == b,
            "NumericLessThanEquals": lambda a, b: a <= b,
            "NumericLessThan": lambda a, b: a < b,
            "NumericGreaterThan": lambda a, b: a > b,
            "NumericGreaterThanEquals": lambda a, b: a >= b,
        }[op]
        assert isinstance(value, int | float) and isinstance(operand, int | float), rule
        return compare(value, operand)

    return next((c["Next"] for c in state["Choices"] if holds(c)), state["Default"])


class Failed(Exception):
    """A task's failure, as a Catch receives it ({Error, Cause})."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(error["Error"])
        self.error = error


def walk(states: dict[str, Any], start: str, data: Any, context: dict[str, Any], task: Any) -> tuple[list[str], Any, dict[str, Any] | None]:
    """Runs `states` from `start`: `task(name, state, data)` gives a Task's or Map's raw result, or
    raises Failed for its Catch. Returns the states visited, the data, and the Fail state's error
    (None when the walk succeeded or reached an End)."""
    visited, name = [], start
    while True:
        visited.append(name)
        state = states[name]
        assert "InputPath" not in state, f"{name}: InputPath is not modelled by this dry run"
        kind = state["Type"]
        if kind == "Succeed":
            return visited, data, None
        if kind == "Fail":
            error = {"Error": get_path(state["ErrorPath"], data, {}), "Cause": get_path(state["CausePath"], data, {})}
            assert all(isinstance(v, str) for v in error.values())
            return visited, data, error
        if kind == "Choice":
            name = choose(state, data)
            continue
        if kind == "Wait":
            assert isinstance(get_path(state["SecondsPath"], data, context), int) if "SecondsPath" in state else state["Seconds"] > 0
        elif kind == "Pass":
            data = after(state, data, resolve(state.get("Parameters", {}), data, context), context)
        else:
            try:
                result = task(name, state, data)
            except Failed as failed:
                (catch,) = state["Catch"]
                data, name = put_result(catch["ResultPath"], data, failed.error), catch["Next"]
                continue
            data = after(state, data, result, context)
        if state.get("End"):
            return visited, data, None
        name = state["Next"]


def ecs_outcome(outcome: Any, item: dict[str, Any]) -> dict[str, Any]:
    """A RunShard attempt: 0 gives the stopped task's description; an exit code, None (the container
    never ran) or "timeout" raise the failure Step Functions reports."""
    if outcome == "timeout":
        raise Failed({"Error": "States.Timeout", "Cause": "The task timed out."})
    container = {"ExitCode": outcome} if outcome is not None else {"Reason": "CannotPullContainerError: pull image manifest"}
    described = {"Containers": [container], "LastStatus": "STOPPED", "StopCode": "EssentialContainerExited", "TaskArn": "arn:task"}
    if outcome == 0:
        return described
    raise Failed({"Error": "States.TaskFailed", "Cause": json.dumps(described)})


def run_item(state: dict[str, Any], item: dict[str, Any], outcomes: list[Any], sent: dict[str, Any]) -> tuple[list[str], Any, dict[str, Any] | None]:
    """One Map item through the ItemProcessor, each RunShard attempt taking the next outcome."""
    processor, attempts = state["ItemProcessor"], iter(outcomes)

    def task(name: str, shard_state: dict[str, Any], data: Any) -> Any:
        assert name == "RunShard" and isinstance(get_path(shard_state["TimeoutSecondsPath"], data, {}), int)
        sent.setdefault("RunShard", resolve(shard_state["Parameters"], data, {}))
        return ecs_outcome(next(attempts), data)

    return walk(processor["States"], processor["StartAt"], item, {}, task)


def dry_run(
    doc: dict[str, Any], plan: dict[str, Any], fail_at: str | set[str] = frozenset(), shard_outcomes: list[Any] = (0,)
) -> tuple[list[str], Any, dict[str, Any]]:
    """Walks the workflow from StartAt with the handler's fake results; every shard's RunShard
    attempts give `shard_outcomes` in turn. Returns the top-level states visited, the last state's
    data, and what was sent: Lambda payloads, the first shard's RunTask parameters, each item's
    states (ShardRuns), outputs (ShardOutputs) and the Fail state's error (Failed)."""
    sent: dict[str, Any] = {}
    failing = {fail_at} if isinstance(fail_at, str) else fail_at

    def task(name: str, state: dict[str, Any], data: Any) -> Any:
        if name in failing:
            raise Failed({"Error": "RunError", "Cause": json.dumps({"errorType": "RunError", "errorMessage": "boom"})})
        if state["Type"] == "Map":
            return run_map(state, data, plan, list(shard_outcomes), sent)
        params = resolve(state["Parameters"], data, {})
        sent[name] = params["Payload"]
        return fake_lambda(params["Payload"], plan)

    visited, data, failure = walk(doc["States"], doc["StartAt"], json.loads(json.dumps(SAMPLE_INPUT)), {}, task)
    if failure is not None:
        sent["Failed"] = failure
    return visited, data, sent


def run_map(state: dict[str, Any], data: Any, plan: dict[str, Any], outcomes: list[Any], sent: dict[str, Any]) -> list[Any]:
    reader = resolve(state["ItemReader"]["Parameters"], data, {})
    assert (reader["Bucket"], reader["Key"]) == (plan["shards_bucket"], plan["shards_key"])
    concurrency = get_path(state["MaxConcurrencyPath"], data, {})
    assert isinstance(concurrency, int) and concurrency > 0
    items = [{"shard": i, "timeout_seconds": 1500} for i in range(plan["shard_count"])]  # shards.json, as the plan task writes it
    outputs, runs = [], []
    for index, value in enumerate(items):
        item = resolve(state["ItemSelector"], data, {"Map": {"Item": {"Index": index, "Value": value}}})
        visited, output, failure = run_item(state, item, outcomes, sent)
        runs.append(visited)
        if failure is not None:
            sent["ShardRuns"] = runs
            raise Failed({"Error": "States.ExceedToleratedFailureThreshold", "Cause": f"item {index}: {failure['Error']}: {failure['Cause']}"})
        outputs.append(output)
    sent["ShardRuns"], sent["ShardOutputs"] = runs, outputs
    return outputs


def plan_result(shard_count: int, size: int) -> dict[str, Any]:
    return {
        "plan_uri": "s3://audiences/_jobs/job-123/plan.json",
        "shards_bucket": "audiences",
        "shards_key": "_jobs/job-123/shards.json",
        "shard_count": shard_count,
        "bytes": size,
    }


def test_dry_run_large_job_runs_the_shards_on_fargate(rendered: dict[str, Any]) -> None:
    visited, data, sent = dry_run(rendered, plan_result(3, 10 * 2**30))
    assert visited == ["MarkRunning", "Config", "Plan", "SmallJob?", "Shards", "Finish", "MarkSucceeded", "Succeeded"]
    assert data["config"] == {
        "max_concurrency": 20,
        "small_job_bytes": 67108864,
        "subnets": ["subnet-0aaa", "subnet-0bbb"],
        "security_groups": ["sg-0ccc"],
    }
    assert data["plan"] == plan_result(3, 10 * 2**30)
    task = sent["RunShard"]
    assert task["Cluster"] == SAMPLE_VALUES["cluster_arn"] and task["LaunchType"] == "FARGATE"
    assert task["NetworkConfiguration"]["AwsvpcConfiguration"] == {
        "Subnets": ["subnet-0aaa", "subnet-0bbb"],
        "SecurityGroups": ["sg-0ccc"],
        "AssignPublicIp": "DISABLED",
    }
    (override,) = task["Overrides"]["ContainerOverrides"]
    assert override["Name"] == "engine"
    assert override["Command"] == [
        "run",
        "configs/send_audience_to_kafka.yml.liquid",
        "--plan",
        "s3://audiences/_jobs/job-123/plan.json",
        "--shard",
        "0",
    ]
    env = {e["Name"]: e["Value"] for e in override["Environment"]}
    assert env["PIPELINES_JOB_ID"] == "job-123"
    assert json.loads(env["PIPELINES_PARAMS"]) == SAMPLE_INPUT["params"]
    assert all(isinstance(e["Value"], str) for e in override["Environment"])
    # Each child execution outputs only its shard index: the Map's collected results stay tiny.
    assert sent["ShardOutputs"] == [0, 1, 2]
    assert sent["MarkSucceeded"]["counts"] == {"rows_read": 12, "rows_written": 11, "rows_skipped": 1, "bytes_read": 340, "end_markers": 6}
    assert sent["Finish"]["plan_uri"] == "s3://audiences/_jobs/job-123/plan.json"
    # The state carries no Lambda response envelopes and no shard results.
    assert set(data) == {"job_id", "pipeline", "params", "config", "plan", "result"}


def test_dry_run_small_job_runs_in_the_lambda(rendered: dict[str, Any]) -> None:
    visited, _, sent = dry_run(rendered, plan_result(1, 1000))
    assert visited == ["MarkRunning", "Config", "Plan", "SmallJob?", "RunInLambda", "Finish", "MarkSucceeded", "Succeeded"]
    assert sent["RunInLambda"] == {
        "task": "run_shard",
        **SAMPLE_INPUT,
        "plan_uri": "s3://audiences/_jobs/job-123/plan.json",
        "shard": 0,
    }
    # At the threshold still small; one byte more, or two shards, goes to Fargate.
    assert dry_run(rendered, plan_result(1, 67108864))[0][4] == "RunInLambda"
    assert dry_run(rendered, plan_result(1, 67108865))[0][4] == "Shards"
    assert dry_run(rendered, plan_result(2, 10))[0][4] == "Shards"


@pytest.mark.parametrize("step", ["MarkRunning", "Plan", "RunInLambda", "Shards", "Finish", "MarkSucceeded"])
def test_dry_run_a_failure_marks_the_job_failed_with_its_cause(rendered: dict[str, Any], step: str) -> None:
    size = 1000 if step == "RunInLambda" else 10 * 2**30
    visited, data, sent = dry_run(rendered, plan_result(1, size), fail_at=step)
    assert visited[-2:] == ["MarkFailed", "Failed"] and step in visited
    assert sent["MarkFailed"]["task"] == "status" and sent["MarkFailed"]["status"] == "FAILED"
    assert sent["MarkFailed"]["error"] == data["error"]
    assert sent["Failed"]["Error"] == "RunError" and "boom" in sent["Failed"]["Cause"]
    if step in ("RunInLambda", "Shards", "Finish"):  # past the plan: its shards' transactions are fenced first
        assert visited[-3:] == ["AbortJob", "MarkFailed", "Failed"]
        assert sent["AbortJob"] == {"task": "abort", **SAMPLE_INPUT, "plan_uri": "s3://audiences/_jobs/job-123/plan.json"}
    else:
        assert "AbortJob" not in visited


def test_dry_run_a_failing_abort_keeps_the_jobs_own_error(rendered: dict[str, Any]) -> None:
    visited, data, sent = dry_run(rendered, plan_result(3, 10 * 2**30), fail_at={"Shards", "AbortJob"})
    assert visited[-3:] == ["AbortJob", "MarkFailed", "Failed"]
    assert sent["MarkFailed"]["error"] == data["error"] and data["error"]["Error"] == "RunError"
    assert data["abort_error"]["Error"] == "RunError" and sent["Failed"]["Error"] == "RunError"


SHARD_OUTCOMES = [
    # (each RunShard attempt's outcome, attempts, whether the shard succeeds)
    ([0], 1, True),
    ([1], 1, False),  # bad data: failed at once, with its cause
    ([2], 1, False),  # a bad config: failed at once
    ([75, 0], 2, True),  # SIGTERM, a broker or S3 that did not answer: retried
    ([137, 75, 0], 3, True),  # killed (out of memory), then stopped: retried
    ([None, 0], 2, True),  # the container never ran: retried
    (["timeout", 0], 2, True),  # past the task's timeout: retried
    ([75, 75, 75, 75], 4, False),  # three retries at most
    ([75, 1], 2, False),
]


@pytest.mark.parametrize(("outcomes", "attempts", "succeeds"), SHARD_OUTCOMES, ids=lambda v: str(v))
def test_dry_run_a_shard_is_retried_only_for_what_may_pass(rendered: dict[str, Any], outcomes: list[Any], attempts: int, succeeds: bool) -> None:
    visited, data, sent = dry_run(rendered, plan_result(1, 10 * 2**30), shard_outcomes=outcomes)
    (run,) = sent["ShardRuns"]
    assert run.count("RunShard") == attempts, run
    assert run.count("Backoff") == attempts - 1
    if succeeds:
        assert visited[-2:] == ["MarkSucceeded", "Succeeded"] and sent["ShardOutputs"] == [0]
        return
    assert run[-1] == "ShardFailed" and visited[-3:] == ["AbortJob", "MarkFailed", "Failed"]
    cause = sent["MarkFailed"]["error"]["Cause"]
    last = outcomes[attempts - 1]
    assert sent["MarkFailed"]["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    assert "item 0: States.TaskFailed" in cause and f'"ExitCode": {last}' in cause, cause


def test_dry_run_catches_a_renamed_field(rendered: dict[str, Any]) -> None:
    """The dry run is strict: a Command reading a field the ItemSelector does not pass fails."""
    broken = json.loads(json.dumps(rendered))
    overrides = broken["States"]["Shards"]["ItemProcessor"]["States"]["RunShard"]["Parameters"]["Overrides"]
    overrides["ContainerOverrides"][0]["Command.$"] = overrides["ContainerOverrides"][0]["Command.$"].replace(
        "$.plan_uri", "$.plan.plan_uri"
    )
    with pytest.raises(Missing, match=r"\$\.plan\.plan_uri does not exist"):
        dry_run(broken, plan_result(3, 10 * 2**30))
    with pytest.raises(Missing, match="unbalanced"):
        evaluate("States.Array('run', States.Format('{}', $.a)", {"a": 1}, {})


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings_in(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def test_every_intrinsic_function_in_the_file_parses(definition: dict[str, Any]) -> None:
    """Nested intrinsics (States.Array(..., States.Format(...))) are legal ASL; each must parse and
    use only known functions (statelint does not check inside them)."""
    exprs = [s for s in strings_in(definition) if s.startswith("States.") and "(" in s]
    assert len(exprs) >= 5
    for expr in exprs:
        tokens = tokenize(expr)
        functions = [text for kind, text in tokens if kind == "fn"]
        assert functions and set(functions) <= INTRINSICS.keys(), expr
        depth = 0
        for _, text in tokens:
            depth += {"(": 1, ")": -1}.get(text, 0)
            assert depth >= 0, expr
        assert depth == 0, expr
