"""Checks of the schema registry of an Avro Kafka input or output: it answers (with the configured
credentials), and the subject takes the values' schema.

For an output, what the run will do (pipelines.kafka.schema_registry.value_schema) is checked without
doing it: nothing is registered. With avsc: registered already, or compatible with the subject's
latest version, or the subject is empty and auto_register lets the run register it. Without: the
subject's latest version is what the run writes with, or auto_register makes one from the columns.
For an input, whose values are read with the schemas their ids name: which version is the latest.
"""

from __future__ import annotations

from typing import Any

from pipelines.check.result import CheckResult, failed, passed, skipped
from pipelines.engine.errors import PipelineError


class RegistryChecks:
    """`schema registry` then `schema subject`, for a Kafka plugin with serialize_format avro (`side`: in or out)."""

    def __init__(self, plugin: Any, side: str) -> None:
        self.plugin = plugin
        self.settings = plugin.settings
        self.side = side
        self.subject = self.settings.value_subject or f"{self.settings.topic}-value"
        self.registry: Any = None

    def answers(self) -> CheckResult:
        from pipelines.kafka.schema_registry import SchemaRegistry

        name = f"schema registry ({self.side})"
        try:
            registry = SchemaRegistry(self.settings.schema_registry_url or "", self.settings.schema_registry_user_info)
            count = len(registry.subjects())
        except ValueError as exc:
            return failed(name, str(exc), "set schema_registry_url (SCHEMA_REGISTRY_URL) to the registry's URL")
        except PipelineError as exc:
            return failed(name, str(exc), "check SCHEMA_REGISTRY_URL, that the registry runs and is reachable, and its credentials")
        self.registry = registry
        return passed(name, f"{registry.url} answered ({count} subjects)")

    def subject_check(self) -> CheckResult:
        name = f"schema subject ({self.side})"
        if self.registry is None:
            return skipped(name, f"'{self.subject}': the registry did not answer")
        try:
            return self._output_subject(name) if self.side == "out" else self._input_subject(name)
        except PipelineError as exc:
            return failed(name, str(exc), "see the message")

    def _input_subject(self, name: str) -> CheckResult:
        from pipelines.kafka.schema_registry import SchemaNotFound

        try:
            schema_id, _ = self.registry.latest(self.subject)
        except SchemaNotFound:
            # The columns are declared (else the config would not have validated): each value is read
            # with the schema its id names, the subject is not asked.
            return passed(name, f"'{self.subject}' has no schema yet (no Avro value written there?); values are read by their schema ids")
        return passed(name, f"'{self.subject}' has schemas (latest id {schema_id})")

    def _output_subject(self, name: str) -> CheckResult:
        from pipelines.kafka.schema_registry import SchemaNotFound

        avsc, auto = self.plugin.avro.avsc, self.settings.auto_register
        try:
            if avsc is None:
                schema_id, _ = self.registry.latest(self.subject)
                return passed(name, f"the run writes with the latest schema of '{self.subject}' (id {schema_id})")
            schema_id = self.registry.check(self.subject, avsc)
            if schema_id is not None:
                return passed(name, f"the schema is registered under '{self.subject}' (id {schema_id})")
            if self.registry.compatible(self.subject, avsc):
                if auto:
                    return passed(name, f"the schema is compatible with '{self.subject}': the run registers it as a new version")
                return _not_registered(name, f"the schema is not registered under '{self.subject}' and auto_register is false")
            return failed(
                name,
                f"the schema is not compatible with the latest version of '{self.subject}' (the subject's compatibility rule)",
                "evolve the schema compatibly (new fields with defaults), or use another subject",
            )
        except SchemaNotFound:
            made = "the config's schema" if avsc is not None else "one made from the columns"
            if auto:
                return passed(name, f"'{self.subject}' has no schema yet: the run registers {made} (auto_register)")
            return _not_registered(name, f"'{self.subject}' has no schema and auto_register is false")


def _not_registered(name: str, detail: str) -> CheckResult:
    return failed(name, detail, "register the schema under the subject first, or set auto_register: true")
