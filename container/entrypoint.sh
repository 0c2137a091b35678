#!/bin/sh
# The image's entrypoint, one image for both places it runs:
#
# - Lambda (the runtime sets AWS_LAMBDA_RUNTIME_API): the Lambda Runtime Interface Client serves
#   pipelines.aws.handler.handler (any arguments, such as the function's image CMD, are ignored).
# - ECS Fargate (anything else): the `pipelines` command with the task's command as its arguments,
#   e.g. `run configs/send_audience_to_kafka.yml.liquid --plan s3://... --shard 7`.
#
# Both exec, so Python replaces this shell (it becomes PID 1 in the container) and receives the
# SIGTERM of an ECS task stop or Spot reclaim itself: `pipelines run` then aborts its shard and
# exits 75 (retryable) well within the 30 s before ECS's SIGKILL.
set -eu

if [ -n "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
  exec python -m awslambdaric pipelines.aws.handler.handler
fi
exec pipelines "$@"
