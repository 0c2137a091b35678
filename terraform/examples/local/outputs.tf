output "api_id" {
  description = "The HTTP API's id: the local API bridge (`python -m pipelines.devstack.api_gateway --api-id ID`) serves its routes."
  value       = element(split(":", module.audience_pipelines.api_execution_arn), 5)
}

output "api_endpoint" {
  description = "The HTTP API's endpoint as the emulator records it (nothing listens there locally: see the api_id output)."
  value       = module.audience_pipelines.api_endpoint
}

output "state_machine_arn" {
  description = "The workflow (PIPELINES_STATE_MACHINE_ARN)."
  value       = module.audience_pipelines.state_machine_arn
}

output "function_name" {
  description = "The Lambda function: the workflow server runs pipelines.aws.handler.handler with its environment."
  value       = module.audience_pipelines.function_name
}

output "jobs_table_name" {
  description = "The jobs table (PIPELINES_JOBS_TABLE)."
  value       = module.audience_pipelines.jobs_table_name
}

output "bucket_name" {
  description = "The bucket: put imports under imports/, drop gzip CSVs under drops/."
  value       = module.audience_pipelines.bucket_name
}

output "event_bus_name" {
  description = "The bus the job status changes go to (PIPELINES_EVENT_BUS)."
  value       = module.audience_pipelines.event_bus_name
}

output "cluster_arn" {
  description = "The ECS cluster: the workflow server runs each shard task as a `pipelines run` process."
  value       = module.audience_pipelines.cluster_arn
}

output "task_definition_arn" {
  description = "The shard tasks' task definition (its container environment is the shard processes')."
  value       = module.audience_pipelines.task_definition_arn
}

output "drop_rule_arns" {
  description = "The S3-drop rules, by drop pipeline."
  value       = module.audience_pipelines.drop_rule_arns
}

output "schedule_arns" {
  description = "The scheduled exports' schedules (stored by the emulator, never fired)."
  value       = module.audience_pipelines.schedule_arns
}

output "role_arns" {
  description = "The module's IAM roles (the emulator does not enforce them)."
  value       = module.audience_pipelines.role_arns
}
