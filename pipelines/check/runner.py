"""Which checks a config needs, run in order: the template and the config first (nothing else can be
checked without them), then the input, the Kafka output and its registry, the places files are
written. Results come one at a time, so a slow check (a broker that does not answer) shows which."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipelines.check.config_checks import render_check, validate_check
from pipelines.check.result import CheckResult, failed


def run_checks(config: Path, variables: Mapping[str, str]) -> Iterator[CheckResult]:
    """Each check's result, in order; after a failed template or config, nothing more."""
    rendered, text = render_check(config, variables)
    yield rendered
    if text is None:
        return
    validated, job = validate_check(config, text)
    yield validated
    if job is None:
        return
    for check in job_checks(job):
        yield run_one(check)


def run_one(check: Callable[[], CheckResult]) -> CheckResult:
    """The check's result; an error it did not expect (a bug here, a library's surprise) is its
    failure, so the checks after it still run."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - reported as the check's line, with its type
        name = getattr(check, "__name__", None) or getattr(getattr(check, "func", None), "__name__", "check")
        return failed(name, f"unexpected error: {type(exc).__name__}: {exc}", "report it; the other checks still ran")


def job_checks(job: Any) -> list[Callable[[], CheckResult]]:
    """The checks of a validated job's input, output, work dir and error output."""
    from pipelines.check.storage_checks import ByteInputChecks, write_checks
    from pipelines.engine import registry

    input_type, output_type = registry.name_of("in", type(job.input)), registry.name_of("out", type(job.output))
    checks: list[Callable[[], CheckResult]] = []
    if input_type == "kafka":
        checks += kafka_plugin_checks(job.input, "in")
    elif not job.input.reads_records:
        byte_input = ByteInputChecks(job.input)
        checks += [byte_input.listing, byte_input.reading]
    if output_type == "kafka":
        checks += kafka_plugin_checks(job.output, "out")
    checks += write_checks(job, output_type)
    return checks


def kafka_plugin_checks(plugin: Any, side: str) -> list[Callable[[], CheckResult]]:
    """The brokers and the topic of a Kafka input or output (and a transactional output's transactions);
    with Avro values, the registry and the subject."""
    from pipelines.check.kafka_checks import KafkaChecks
    from pipelines.check.registry_checks import RegistryChecks

    kafka = KafkaChecks(plugin.settings, side)
    checks: list[Callable[[], CheckResult]] = [kafka.brokers, kafka.topic]
    if side == "out" and plugin.settings.transactional:
        checks.append(kafka.transactions)
    if plugin.settings.serialize_format == "avro":
        registry = RegistryChecks(plugin, side)
        checks += [registry.answers, registry.subject_check]
    return checks
