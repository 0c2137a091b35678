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
