"""OpenLineage run events with the openlineage-python client: START when a job starts, then
COMPLETE or FAIL when it ends, each naming the job's inputs and outputs (datasets.py); COMPLETE
carries the row counts in the output (and input) statistics facets, FAIL the error message.

Sent over HTTP when $OPENLINEAGE_URL is set (the client's own settings apply: OPENLINEAGE_API_KEY,
OPENLINEAGE_ENDPOINT, OPENLINEAGE_DISABLED...), otherwise nowhere. The run id is derived from the
job id (uuid5), so a job's START and its end, sent by different processes (the workflow's Lambda
tasks), carry the same run id; the job id itself is in the run's `audiencePipelines` facet.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from pipelines.observe.counts import Counts

URL_ENV = "OPENLINEAGE_URL"
NAMESPACE_ENV = "OPENLINEAGE_NAMESPACE"  # the job namespace (the client's own variable name)
DEFAULT_NAMESPACE = "audience-pipelines"
PRODUCER = "urn:audience-pipelines"  # the spec asks for a URI naming the producer
RUN_IDS = uuid.UUID("6f1c3a52-5d0e-4bb0-9b87-2f4a8a0c7e11")  # uuid5 namespace of job ids


def enabled() -> bool:
    return bool(os.environ.get(URL_ENV, "").strip()) and os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() != "true"


def run_id(job_id: str) -> str:
    return str(uuid.uuid5(RUN_IDS, job_id))


def build_event(
    state: str, job_id: str, pipeline: str, datasets: tuple[list[Any], list[Any]], counts: Counts | None = None, error: str | None = None
) -> Any:
    """The RunEvent for `state` (START, COMPLETE, FAIL) of a job."""
    from datetime import datetime, timezone

    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job

    run_facets: dict[str, Any] = {"audiencePipelines": _job_facet(job_id)}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error, programmingLanguage="python")
    job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="AUDIENCE_PIPELINES", jobType="JOB")}
    inputs, outputs = _datasets(datasets, counts)
    return RunEvent(
        eventType=getattr(RunState, state),
        eventTime=datetime.now(timezone.utc).isoformat(),
        run=Run(runId=run_id(job_id), facets=run_facets),
        job=Job(namespace=os.environ.get(NAMESPACE_ENV, "").strip() or DEFAULT_NAMESPACE, name=pipeline, facets=job_facets),
        producer=PRODUCER,
        inputs=inputs,
        outputs=outputs,
    )


def _datasets(datasets: tuple[list[Any], list[Any]], counts: Counts | None) -> tuple[list[Any], list[Any]]:
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import input_statistics_input_dataset as in_stats
    from openlineage.client.facet_v2 import output_statistics_output_dataset as out_stats

    in_facets: dict[str, Any] = {}
    out_facets: dict[str, Any] = {}
    if counts is not None:
        in_facets["inputStatistics"] = in_stats.InputStatisticsInputDatasetFacet(rowCount=counts.rows_read, size=counts.bytes_read)
        out_facets["outputStatistics"] = out_stats.OutputStatisticsOutputDatasetFacet(rowCount=counts.rows_written)
    inputs = [InputDataset(namespace=ns, name=name, inputFacets=dict(in_facets)) for ns, name in datasets[0]]
    outputs = [OutputDataset(namespace=ns, name=name, outputFacets=dict(out_facets)) for ns, name in datasets[1]]
    return inputs, outputs


def _job_facet(job_id: str) -> Any:
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class AudiencePipelinesRunFacet(RunFacet):
        jobId: str  # noqa: N815 (OpenLineage's camelCase)

    return AudiencePipelinesRunFacet(jobId=job_id)


def send(event: Any) -> None:
    """Sends an event; a failure is logged (without the endpoint's credentials) and never raised."""
    from pipelines.engine.progress import log_event

    try:
        from openlineage.client import OpenLineageClient

        OpenLineageClient().emit(event)
    except Exception as exc:  # noqa: BLE001 (lineage never fails a job)
        log_event("lineage_not_sent", event_type=str(event.eventType.value), error=type(exc).__name__)
