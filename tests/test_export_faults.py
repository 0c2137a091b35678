"""An export whose multipart uploads meet S3 500s, through a fault-injecting proxy in front of the
moto server (tests/fault_s3.py), the export's AWS_ENDPOINT_URL pointing at the proxy.

A part that fails once is sent again (botocore's standard retry mode rewinds the part's body), and
the export completes with every row. A part that fails on every try fails the run with exit 75 (a
5xx may pass: the workflow retries), a line naming the file, no object, no incomplete upload and no
manifest; run again without the fault, the job resumes and completes.
"""

from __future__ import annotations

from conftest import run_cli, summary_of
from fault_s3 import Fault, fault_s3
from test_exports import (
    EXPORT,
    audience,
    checked_manifest,
    export_vars,
    import_job,
    objects,
    read_csv_export,
    uploads,
)

from pipelines.engine.errors import EXIT_RETRYABLE


def test_a_part_that_fails_once_is_retried_and_the_export_completes(stack, s3, bucket, topic):
    expected = audience(s3, bucket, 3_000, seed=11)
    import_job(bucket, topic, f"import-{topic}")
    job_id = f"retried-{topic}"
    part = Fault("PUT", "partNumber=", path_contains=f"/{bucket}/exports/{job_id}/", times=1)

    with fault_s3(stack.aws_endpoint_url, part) as url:
        result = run_cli("run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="1000"), "--job-id", job_id,
                         env={"AWS_ENDPOINT_URL": url})

    assert result.returncode == 0, result.stderr
    assert summary_of(result)["rows_written"] == 3_000
    manifest = checked_manifest(s3, bucket, job_id)  # sizes and sha256: the part sent again was the whole part
    assert part.failed == 1 and part.matched == len(manifest.files) + 1, part.requests
    assert part.requests[0] == part.requests[1], "the failed part was sent again, with its number and upload id"
    assert read_csv_export(s3, manifest) == expected


def test_a_part_that_fails_on_every_try_aborts_the_upload_and_writes_no_manifest(stack, s3, bucket, topic):
    expected = audience(s3, bucket, 3_000, seed=12)
    import_job(bucket, topic, f"import-{topic}")
    job_id = f"failing-{topic}"
    prefix = f"exports/{job_id}/"
    part = Fault("PUT", "partNumber=", path_contains=f"/{bucket}/{prefix}", times=None)

    with fault_s3(stack.aws_endpoint_url, part) as url:
        result = run_cli("run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="1000"), "--job-id", job_id,
                         env={"AWS_ENDPOINT_URL": url})

    assert result.returncode == EXIT_RETRYABLE, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: s3://{bucket}/{prefix}part-00000-00000.csv.gz: S3 answered 500 InternalError"), error
    assert "(UploadPart, 9 tries); it may pass on retry" in error, error
    assert summary_of(result)["status"] == "failed"
    assert part.matched == part.failed == 9 and len(set(part.requests)) == 1, "botocore's 8 retries of the one part"
    assert objects(s3, bucket, prefix) == {}, "no completed object, no manifest"
    assert uploads(s3, bucket, prefix) == [], "the multipart upload was aborted"
    assert not objects(s3, bucket, f"_jobs/{job_id}/shards/00000.json"), "the shard has no report: it runs again"

    again = run_cli("run", EXPORT, *export_vars(bucket, topic, MAX_ROWS_PER_FILE="1000"), "--job-id", job_id)  # S3 is well again
    assert again.returncode == 0, again.stderr
    assert read_csv_export(s3, checked_manifest(s3, bucket, job_id)) == expected
