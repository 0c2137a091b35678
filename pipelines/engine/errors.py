"""Exception families and the exit codes they map to.

Exit codes (documented in docs/operations.md and `pipelines --help`):
  0  the run succeeded
  1  the run failed (bad data past the threshold, missing object, ...)
  2  the config or the command line is wrong (nothing was read or written)
  75 the run failed for a reason that may pass (a broker or endpoint not answering): retry it
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_CONFIG = 2
EXIT_RETRYABLE = 75  # EX_TEMPFAIL: the workflow retries shards that exit with it


class PipelineError(Exception):
    """Base of every error the engine reports to the user as one clear line."""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(PipelineError):
    """The config (template, YAML or settings) or the command line is wrong."""

    exit_code = EXIT_CONFIG


class RunError(PipelineError):
    """The run failed: the data, the source or the destination did not allow it to finish."""

    exit_code = EXIT_RUN_FAILED


class TransientRunError(RunError):
    """A run failure that may pass if retried (a broker or endpoint not answering)."""

    exit_code = EXIT_RETRYABLE


class Terminated(TransientRunError):
    """The process was told to stop (SIGTERM: a Fargate stop or a Spot reclaim) and aborted what it ran.

    Retryable: a stopped shard aborted its transaction (and its multipart uploads), so running it
    again gives every row once."""

    SHARD = "stopped by SIGTERM (a Fargate stop or Spot reclaim); the shard was aborted and can be retried"
    JOB = "stopped by SIGTERM (a Fargate stop or Spot reclaim); the running shards were aborted, and running the job again resumes it"


class TimedOut(Terminated):
    """The shard ran past its time limit (pipelines.engine.plan.shard_time_limit) and aborted what it ran.

    Retryable, as a SIGTERM is: a hung broker or S3 may answer the next attempt."""

    @staticmethod
    def shard_message(seconds: int) -> str:
        return f"the shard ran past its time limit of {seconds} s (from its size; $PIPELINES_SHARD_TIME_LIMIT sets one); it was aborted and can be retried"


class DataError(RunError):
    """The input bytes themselves are bad (truncated compression, wrong charset, empty object)."""


def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of a failed call (``ThrottlingException``, ``NoSuchKey``, ...), read from
    the ``response`` an AWS SDK client error carries; "" for any other exception."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return str(error.get("Code", "")) if isinstance(error, dict) else ""
