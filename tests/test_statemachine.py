"""statemachine.json, checked without AWS: JSON, the ASL validator, the placeholders, and a dry run.

- statelint (PyPI, in the test extra) lints the template and the rendered definition, in a
  subprocess; its one known false positive (ReaderConfig.InputType) is the only message allowed.
- The placeholders are exactly pipelines.workflow.PLACEHOLDERS, and render like templatefile.
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

from pipelines.workflow import PLACEHOLDERS, placeholders_in, render_definition, statemachine_path

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
LAMBDA_TASKS = {"status", "plan", "run_shard", "finish"}
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
    steps = top_level_tasks(definition)
    assert set(steps) == {"MarkRunning", "Plan", "RunInLambda", "Shards", "Finish", "MarkSucceeded", "MarkFailed"}
    for name, state in steps.items():
        if name == "MarkFailed":
            assert "Catch" not in state
            continue
        assert state.get("Catch") == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MarkFailed"}], name
    # The shard task inside the Map has no Catch: its failure fails the Map run, which the Map catches.
    assert "Catch" not in definition["States"]["Shards"]["ItemProcessor"]["States"]["RunShard"]
    assert definition["States"]["MarkFailed"]["Next"] == "Failed"
    failed = definition["States"]["Failed"]
    assert (failed["Type"], failed["ErrorPath"], failed["CausePath"]) == ("Fail", "$.error.Error", "$.error.Cause")


def lambda_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in definition["States"].items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"}


def test_lambda_tasks_name_a_known_task_and_retry_lambda_errors(definition: dict[str, Any]) -> None:
    states = lambda_states(definition)
    assert set(states) == {"MarkRunning", "Plan", "RunInLambda", "Finish", "MarkSucceeded", "MarkFailed"}
    for name, state in states.items():
        params = state["Parameters"]
        assert params["FunctionName"] == "${function_arn}", name
        assert params["Payload"]["task"] in LAMBDA_TASKS, name
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert LAMBDA_ERRORS <= retried, name
        assert all(r["MaxAttempts"] >= 1 and r["BackoffRate"] >= 1 for r in state["Retry"]), name
    transient = next(r for r in states["RunInLambda"]["Retry"] if "TransientRunError" in r["ErrorEquals"])
    assert transient["IntervalSeconds"] > 0 and transient["BackoffRate"] > 1


def test_the_shard_task_retries_with_backoff(definition: dict[str, Any]) -> None:
    shards = definition["States"]["Shards"]
    assert shards["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert shards["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert shards["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert shards["ResultPath"] is None and "ResultWriter" not in shards
    run_shard = shards["ItemProcessor"]["States"]["RunShard"]
    assert run_shard["Resource"] == "arn:aws:states:::ecs:runTask.sync"
    assert run_shard["Retry"] == [
        {
            "ErrorEquals": ["ECS.AmazonECSException", "States.TaskFailed"],
            "IntervalSeconds": 10,
            "MaxAttempts": 3,
            "BackoffRate": 2.0,
            "JitterStrategy": "FULL",
        }
    ]


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
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            raise Missing(f"unsupported path syntax in {path!r}")
        if not isinstance(value, dict) or part not in value:
            raise Missing(f"{path} does not exist in {json.dumps(value)[:300]}")
        value = value[part]
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
    """The Lambda handler's contract (pipelines/handler.py): required fields in, small results out."""
    required = {
        "status": {"job_id", "pipeline", "status"},
        "plan": {"job_id", "pipeline", "params"},
        "run_shard": {"job_id", "pipeline", "params", "plan_uri", "shard"},
        "finish": {"job_id", "pipeline", "params", "plan_uri"},
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
    else:
        result = {"rows_read": 12, "rows_written": 11, "rows_skipped": 1, "end_markers": 6}
    return {"ExecutedVersion": "$LATEST", "Payload": result, "SdkHttpMetadata": {}, "StatusCode": 200}


def choose(state: dict[str, Any], data: Any) -> str:
    def holds(rule: dict[str, Any]) -> bool:
        if "And" in rule:
            return all(holds(r) for r in rule["And"])
        if "Or" in rule:
            return any(holds(r) for r in rule["Or"])
        if "Not" in rule:
            return not holds(rule["Not"])
        value = get_path(rule["Variable"], data, {})
        ((op, operand),) = ((k, v) for k, v in rule.items() if k not in ("Variable", "Next"))
        if op.endswith("Path"):
            op, operand = op[: -len("Path")], get_path(operand, data, {})
        compare = {
            "NumericEquals": lambda a, b: a == b,
            "NumericLessThanEquals": lambda a, b: a <= b,
            "NumericLessThan": lambda a, b: a < b,
            "NumericGreaterThan": lambda a, b: a > b,
        }[op]
        assert isinstance(value, int | float) and isinstance(operand, int | float), rule
        return compare(value, operand)

    return next((c["Next"] for c in state["Choices"] if holds(c)), state["Default"])


def dry_run(doc: dict[str, Any], plan: dict[str, Any], fail_at: str | None = None) -> tuple[list[str], Any, dict[str, Any]]:
    """Walks the top-level states from StartAt; returns the states visited, the last state's data,
    and what was sent: Lambda payloads and the ECS RunTask parameters of the first shard."""
    data: Any = json.loads(json.dumps(SAMPLE_INPUT))
    sent: dict[str, Any] = {}
    visited, name = [], doc["StartAt"]
    while True:
        visited.append(name)
        state = doc["States"][name]
        assert "InputPath" not in state, f"{name}: InputPath is not modelled by this dry run"
        if state["Type"] == "Succeed":
            return visited, data, sent
        if state["Type"] == "Fail":
            sent["Failed"] = {"Error": get_path(state["ErrorPath"], data, {}), "Cause": get_path(state["CausePath"], data, {})}
            assert all(isinstance(v, str) for v in sent["Failed"].values())
            return visited, data, sent
        if state["Type"] == "Choice":
            name = choose(state, data)
            continue
        if name == fail_at:
            error = {"Error": "RunError", "Cause": json.dumps({"errorType": "RunError", "errorMessage": "boom"})}
            (catch,) = state["Catch"]
            data, name = put_result(catch["ResultPath"], data, error), catch["Next"]
            continue
        if state["Type"] == "Pass":
            data = after(state, data, resolve(state.get("Parameters", {}), data, {}), {})
        elif state["Type"] == "Task":
            params = resolve(state["Parameters"], data, {})
            sent[name] = params["Payload"]
            data = after(state, data, fake_lambda(params["Payload"], plan), {})
        elif state["Type"] == "Map":
            reader = resolve(state["ItemReader"]["Parameters"], data, {})
            assert (reader["Bucket"], reader["Key"]) == (plan["shards_bucket"], plan["shards_key"])
            concurrency = get_path(state["MaxConcurrencyPath"], data, {})
            assert isinstance(concurrency, int) and concurrency > 0
            items = [{"shard": i} for i in range(plan["shard_count"])]  # shards.json, as the plan task writes it
            outputs = []
            for index, value in enumerate(items):
                context = {"Map": {"Item": {"Index": index, "Value": value}}}
                item = resolve(state["ItemSelector"], data, context)
                processor = state["ItemProcessor"]
                assert list(processor["States"]) == [processor["StartAt"]], "one state per shard"
                shard_state = processor["States"][processor["StartAt"]]
                assert shard_state.get("End") is True and "InputPath" not in shard_state
                run_task = resolve(shard_state["Parameters"], item, {})
                sent.setdefault("RunShard", run_task)
                described = {"Containers": [{"ExitCode": 0}], "LastStatus": "STOPPED", "TaskArn": "arn:task"}
                outputs.append(after(shard_state, item, described, {}))
            sent["ShardOutputs"] = outputs
            data = after(state, data, outputs, {})
        else:
            raise AssertionError(f"unexpected state type {state['Type']}")
        name = state["Next"]


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
    assert sent["MarkSucceeded"]["counts"] == {"rows_read": 12, "rows_written": 11, "rows_skipped": 1, "end_markers": 6}
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
