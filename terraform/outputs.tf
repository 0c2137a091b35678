output "api_endpoint" {
  description = "The HTTP API's base URL: POST /imports, GET /jobs, GET /jobs/{id}, signed with SigV4 (service execute-api)."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "api_execution_arn" {
  description = "The HTTP API's execution ARN, for callers' execute-api:Invoke policies (<arn>/$default/POST/imports, <arn>/$default/GET/jobs/*)."
  value       = aws_apigatewayv2_api.http.execution_arn
}

output "state_machine_arn" {
  description = "The workflow (PIPELINES_STATE_MACHINE_ARN)."
  value       = aws_sfn_state_machine.this.arn
}

output "function_name" {
  description = "The Lambda function's name."
  value       = aws_lambda_function.engine.function_name
}

output "function_arn" {
  description = "The Lambda function's ARN."
  value       = aws_lambda_function.engine.arn
}

output "cluster_arn" {
  description = "The ECS cluster the shard tasks run in."
  value       = aws_ecs_cluster.this.arn
}

output "task_definition_arn" {
  description = "The shard tasks' task definition (with its revision)."
  value       = aws_ecs_task_definition.shard.arn
}

output "jobs_table_name" {
  description = "The DynamoDB jobs table (PIPELINES_JOBS_TABLE)."
  value       = aws_dynamodb_table.jobs.name
}

output "bucket_name" {
  description = "The pipelines' bucket: drops, imports, exports, _jobs/ and _errors/."
  value       = aws_s3_bucket.data.bucket
}

output "bucket_arn" {
  description = "The pipelines' bucket's ARN."
  value       = aws_s3_bucket.data.arn
}

output "kms_key_arn" {
  description = "The module's KMS key (bucket, jobs table, logs, Lambda environment, schedules). Writers to the bucket from outside the module need kms:GenerateDataKey on it."
  value       = aws_kms_key.this.arn
}

output "event_bus_name" {
  description = "The bus the job status changes are published to (PIPELINES_EVENT_BUS), detail type \"Audience Pipeline Job Status Change\"."
  value       = var.event_bus_name
}

output "failed_triggers_queue_url" {
  description = "The dead-letter queue of the triggers (S3 drops and schedules that could not start a job after every retry)."
  value       = aws_sqs_queue.failed_triggers.url
}

output "role_arns" {
  description = "The module's IAM roles, by part."
  value = {
    task_execution = aws_iam_role.task_execution.arn
    task           = aws_iam_role.task.arn
    lambda         = aws_iam_role.lambda.arn
    state_machine  = aws_iam_role.state_machine.arn
    scheduler      = aws_iam_role.scheduler.arn
  }
}

output "drop_rule_arns" {
  description = "The S3-drop EventBridge rules, by drop pipeline name."
  value       = { for name, rule in aws_cloudwatch_event_rule.s3_drop : name => rule.arn }
}

output "schedule_arns" {
  description = "The scheduled exports' schedules, by name."
  value       = { for name, schedule in aws_scheduler_schedule.export : name => schedule.arn }
}

output "log_group_names" {
  description = "The log groups, by part."
  value = {
    ecs           = aws_cloudwatch_log_group.ecs.name
    lambda        = aws_cloudwatch_log_group.lambda.name
    state_machine = aws_cloudwatch_log_group.state_machine.name
    api           = aws_cloudwatch_log_group.api.name
  }
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of the jobs' metrics (rows, rows/s, jobs by status, skipped rows, shard seconds)."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "failed_jobs_alarm_arn" {
  description = "The alarm that fires when any job fails (Jobs with status=failed)."
  value       = aws_cloudwatch_metric_alarm.failed_jobs.arn
}

output "metrics_namespace" {
  description = "The CloudWatch namespace the engine's metrics land in."
  value       = local.metrics_namespace
}
