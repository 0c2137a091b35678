# The Lambda function, from the same image as the shard tasks (its entrypoint serves
# pipelines.aws.handler.handler under the Lambda runtime): the state machine's status, plan, run_shard
# and finish tasks, the S3-drop and schedule triggers, and the HTTP API.

resource "aws_lambda_function" "engine" {
  #checkov:skip=CKV_AWS_272:Code signing applies to .zip packages only; Lambda does not support it for container images (the image is pinned by var.image_uri, ideally by digest).
  function_name                  = local.function_name
  description                    = "Audience pipelines: job status, plan, small shards, finish, triggers and the HTTP API"
  package_type                   = "Image"
  image_uri                      = var.image_uri
  architectures                  = [lower(var.cpu_architecture) == "arm64" ? "arm64" : "x86_64"]
  role                           = aws_iam_role.lambda.arn
  memory_size                    = var.lambda_memory_size
  timeout                        = var.lambda_timeout
  reserved_concurrent_executions = var.lambda_reserved_concurrency == null ? -1 : var.lambda_reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    # Exactly pipelines.aws.deployment.lambda_environment() (tests/test_terraform.py checks it).
    variables = merge(local.engine_environment, local.lambda_only_environment)
  }

  # It reaches Kafka, like the shard tasks.
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tracing_config {
    mode = "Active"
  }

  # Asynchronous invocations (the drop rules, the schedules) that still fail after Lambda's retries.
  dead_letter_config {
    target_arn = aws_sqs_queue.failed_triggers.arn
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda.name
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy.lambda_logs,
    aws_iam_role_policy.lambda_network,
    aws_iam_role_policy.lambda_dead_letters,
  ]
}

# A trigger whose job could not start for a transient reason raises TransientRunError, and Lambda
# retries the event (twice); after that it goes to the dead-letter queue.
resource "aws_lambda_function_event_invoke_config" "engine" {
  function_name                = aws_lambda_function.engine.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.engine.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}

resource "aws_lambda_permission" "s3_drop" {
  for_each = aws_cloudwatch_event_rule.s3_drop

  statement_id  = "AllowS3Drop-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.engine.function_name
  principal     = "events.amazonaws.com"
  source_arn    = each.value.arn
}
