output "api_endpoint" {
  description = "The HTTP API (SigV4): POST /imports, GET /jobs, GET /jobs/{id}."
  value       = module.audience_pipelines.api_endpoint
}

output "state_machine_arn" {
  description = "The workflow."
  value       = module.audience_pipelines.state_machine_arn
}

output "bucket_name" {
  description = "Drop audiences under drops/csv/ (gzip CSV) to import them."
  value       = module.audience_pipelines.bucket_name
}

output "jobs_table_name" {
  description = "The jobs table."
  value       = module.audience_pipelines.jobs_table_name
}

output "failed_triggers_queue_url" {
  description = "Triggers that could not start a job."
  value       = module.audience_pipelines.failed_triggers_queue_url
}

# For running a one-off task of the engine under the task role (the README's `pipelines check` step).
output "cluster_arn" {
  description = "The ECS cluster of the shard tasks."
  value       = module.audience_pipelines.cluster_arn
}

output "task_definition_arn" {
  description = "The shard tasks' task definition (its container is named engine)."
  value       = module.audience_pipelines.task_definition_arn
}

output "subnet_ids" {
  description = "The private subnets the tasks run in, comma-joined."
  value       = join(",", data.aws_subnets.private.ids)
}

output "security_group_id" {
  description = "The tasks' security group."
  value       = aws_security_group.pipelines.id
}
