"""CloudWatch Embedded Metric Format (EMF) lines on stdout, written with Powertools' metrics.

A shard's end writes one line (Shards=1 and its rows, bytes, seconds, rows/s); a job's end writes
one (Jobs=1 and the same values prefixed Job). Dimensions: pipeline and status. Lambda and the ECS
awslogs driver deliver stdout to CloudWatch Logs, which turns each line into metrics: no agent.

On by default where CloudWatch reads stdout (in Lambda and in an ECS task), off elsewhere, so a
terminal shows only the summary; $PIPELINES_METRICS=emf turns it on anywhere, =off off. The line
comes before the command's summary, which stays the last line of stdout.
"""

from __future__ import annotations

import os

from pipelines.observe.counts import Counts

METRICS_ENV = "PIPELINES_METRICS"  # emf | off (default: emf in Lambda and ECS)
NAMESPACE_ENV = "PIPELINES_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "AudiencePipelines"
WHERE_CLOUDWATCH_READS_STDOUT = ("AWS_LAMBDA_FUNCTION_NAME", "ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI")


def enabled() -> bool:
    chosen = os.environ.get(METRICS_ENV, "").strip().lower()
    if chosen in ("emf", "on", "1", "true"):
        return True
    if chosen in ("off", "0", "false", "none"):
        return False
    return any(os.environ.get(name) for name in WHERE_CLOUDWATCH_READS_STDOUT)


def namespace() -> str:
    return os.environ.get(NAMESPACE_ENV, "").strip() or DEFAULT_NAMESPACE


def emit(scope: str, pipeline: str, status: str, counts: Counts, job_id: str, shard: int | None = None) -> None:
    """One EMF line for a shard (scope "shard") or a job (scope "job") that ended with `status`."""
    if not enabled():
        return
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    metrics = EphemeralMetrics(namespace=namespace())
    metrics.add_dimension("pipeline", pipeline)
    metrics.add_dimension("status", status)
    prefix = "Job" if scope == "job" else ""
    metrics.add_metric("Jobs" if scope == "job" else "Shards", MetricUnit.Count, 1)
    for name, unit, value in (
        ("RowsRead", MetricUnit.Count, counts.rows_read),
        ("RowsWritten", MetricUnit.Count, counts.rows_written),
        ("RowsSkipped", MetricUnit.Count, counts.rows_skipped),
        ("Bytes", MetricUnit.Bytes, counts.bytes_read),
        ("Seconds", MetricUnit.Seconds, counts.seconds),
        ("RowsPerSecond", MetricUnit.CountPerSecond, counts.rows_per_second),
    ):
        metrics.add_metric(prefix + name, unit, value)
    metrics.add_metadata("job_id", job_id)
    if shard is not None:
        metrics.add_metadata("shard", shard)
    metrics.flush_metrics()
