"""A job's inputs and outputs as OpenLineage datasets, named by OpenLineage's naming spec (with the
client's own naming classes): S3 as namespace s3://<bucket> and name <key or key prefix>; Kafka as
kafka://<first bootstrap host>:<port> and <topic>; local files as file and <absolute path>.
stdout and null outputs are no dataset. Imported only when lineage is on (the client is slow to import)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Dataset = tuple[str, str]  # (namespace, name)


def dataset_of(plugin: Any) -> Dataset | None:
    """Where a plugin reads or writes, from its settings (the same keys for inputs and outputs)."""
    from openlineage.client.naming import dataset as naming

    settings = getattr(plugin, "settings", None)
    if getattr(settings, "topic", None) and getattr(settings, "brokers", None):
        host, _, port = settings.brokers[0].rpartition(":")
        named: Any = naming.Kafka(host or settings.brokers[0], port or "9092", settings.topic)
    elif getattr(settings, "bucket", None):
        key = getattr(settings, "path", None) or getattr(settings, "path_prefix", None) or "/"
        named = naming.S3(settings.bucket, key)
    elif getattr(settings, "path_prefix", None):
        named = naming.LocalFileSystem(str(Path(settings.path_prefix).absolute()))
    else:
        return None
    return named.get_namespace(), named.get_name()


def job_datasets(job: Any) -> tuple[list[Dataset], list[Dataset]]:
    """(inputs, outputs) of a loaded config."""
    found_in, found_out = dataset_of(job.input), dataset_of(job.output)
    return ([found_in] if found_in else []), ([found_out] if found_out else [])
