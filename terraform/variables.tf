# ------------------------------------------------------------------------------------------------
# Naming and the image
# ------------------------------------------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource (the state machine, the Lambda function, the ECS cluster and task family, the jobs table <name>-jobs, the roles, the log groups)."
  type        = string
  default     = "audience-pipelines"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 32 characters of lowercase letters, digits and hyphens, starting with a letter (it prefixes IAM role names, which are limited to 64 characters)."
  }
}

variable "image_uri" {
  description = "The engine's container image in ECR (container/Dockerfile), by tag or digest: ACCOUNT.dkr.ecr.REGION.<ECR domain>/REPOSITORY:TAG or ...@sha256:DIGEST. The same image runs the ECS shard tasks and the Lambda function; a digest makes a deployment reproducible."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.[a-z0-9.]+/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.image_uri))
    error_message = "image_uri must be an ECR image (Lambda runs container images from ECR only), with a tag or a sha256 digest."
  }
}

variable "container_name" {
  description = "The name of the engine's container in the ECS task definition; the state machine's container override names it (statemachine.json's $${container_name})."
  type        = string
  default     = "engine"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$", var.container_name))
    error_message = "container_name must be 1 to 255 letters, digits, hyphens and underscores."
  }
}

variable "cpu_architecture" {
  description = "The image's CPU architecture, for both the Fargate task and the Lambda function: X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

# ------------------------------------------------------------------------------------------------
# Network: the shard tasks and the Lambda function both reach Kafka
# ------------------------------------------------------------------------------------------------

variable "subnet_ids" {
  description = "Private subnets of the shard tasks and the Lambda function (they need a route to Kafka, S3, DynamoDB, EventBridge, Step Functions, Secrets Manager and ECR: a NAT gateway or VPC endpoints). The state machine receives them comma-joined."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "subnet_ids must list at least one subnet id (subnet-...)."
  }
}

variable "security_group_ids" {
  description = "Security groups of the shard tasks and the Lambda function; they must allow egress to the Kafka brokers, the schema registry and the AWS endpoints (HTTPS). The state machine receives them comma-joined."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) > 0 && length(var.security_group_ids) <= 5 && alltrue([for id in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "security_group_ids must list 1 to 5 security group ids (sg-...)."
  }
}

# ------------------------------------------------------------------------------------------------
# Kafka (an input to the module: MSK or any other cluster) and the schema registry
# ------------------------------------------------------------------------------------------------

variable "kafka_bootstrap_servers" {
  description = "The Kafka brokers, host:port each (KAFKA_BOOTSTRAP, comma-joined)."
  type        = list(string)

  validation {
    condition     = length(var.kafka_bootstrap_servers) > 0 && alltrue([for b in var.kafka_bootstrap_servers : can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", b))])
    error_message = "kafka_bootstrap_servers must list at least one host:port."
  }
}

variable "kafka_auth" {
  description = "How the engine authenticates to Kafka (KAFKA_AUTH): none, scram (SASL/SCRAM-SHA-512 over TLS, credentials in kafka_sasl_secret_arn) or msk_iam (SASL/OAUTHBEARER with MSK IAM over TLS, permissions on msk_cluster_arn)."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "scram", "msk_iam"], var.kafka_auth)
    error_message = "kafka_auth must be none, scram or msk_iam."
  }
}

variable "kafka_sasl_secret_arn" {
  description = "With kafka_auth = scram: the Secrets Manager secret holding {\"username\", \"password\"} (KAFKA_SASL_SECRET_ARN). The task role and the Lambda role may read this secret only."
  type        = string
  default     = null

  validation {
    condition     = var.kafka_sasl_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.kafka_sasl_secret_arn))
    error_message = "kafka_sasl_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "kafka_sasl_secret_kms_key_arn" {
  description = "With kafka_auth = scram and a secret encrypted with a customer managed KMS key: that key's ARN (the roles get kms:Decrypt on it, through Secrets Manager only). Leave null for the AWS managed key aws/secretsmanager."
  type        = string
  default     = null

  validation {
    condition     = var.kafka_sasl_secret_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kafka_sasl_secret_kms_key_arn))
    error_message = "kafka_sasl_secret_kms_key_arn must be a KMS key ARN (arn:...:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "msk_cluster_arn" {
  description = "With kafka_auth = msk_iam: the MSK cluster's ARN (arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID). The roles get kafka-cluster permissions on it and on its topics, groups and transactional ids."
  type        = string
  default     = null

  validation {
    condition     = var.msk_cluster_arn == null || can(regex("^arn:aws[a-z-]*:kafka:[a-z0-9-]+:[0-9]{12}:cluster/[^/]+/[^/]+$", var.msk_cluster_arn))
    error_message = "msk_cluster_arn must be an MSK cluster ARN: arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID."
  }
}

variable "schema_registry_url" {
  description = "The Confluent-compatible schema registry, for the Avro pipelines (SCHEMA_REGISTRY_URL); empty when no pipeline uses Avro."
  type        = string
  default     = ""

  validation {
    condition     = var.schema_registry_url == "" || can(regex("^https?://[^\\s]+$", var.schema_registry_url))
    error_message = "schema_registry_url must be empty or an http(s) URL."
  }
}

# ------------------------------------------------------------------------------------------------
# The bucket: drops, imports, exports, the plans (_jobs/) and the bad rows (_errors/)
# ------------------------------------------------------------------------------------------------

variable "bucket_name" {
  description = "The S3 bucket the module creates for the pipelines: drops and imports (inputs), exports, the work dir _jobs/ (plans, shard reports, summaries) and the error outputs _errors/. The configs put _jobs/ and _errors/ in the bucket of the job's input (S3_BUCKET) or export (EXPORT_BUCKET), so jobs read from and export to this bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("\\.\\.", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)."
  }
}

variable "bucket_force_destroy" {
  description = "Whether terraform destroy may delete the bucket with the objects in it."
  type        = bool
  default     = false
}

variable "input_prefixes" {
  description = "Key prefixes of the bucket the engine may read inputs from (POST /imports params S3_KEY), besides the drop prefixes of drop_pipelines."
  type        = list(string)
  default     = ["imports/"]

  validation {
    condition     = alltrue([for p in var.input_prefixes : can(regex("^[^*\"\\\\]+/$", p)) && !startswith(p, "_")])
    error_message = "input_prefixes must be key prefixes ending in '/', without '*', quotes or backslashes, and not under _jobs/ or _errors/."
  }
}

variable "export_prefix" {
  description = "The key prefix the export pipelines write under (export_audience_to_s3 writes exports/<topic>/<job id>/ by default)."
  type        = string
  default     = "exports/"

  validation {
    condition     = can(regex("^[^*\"\\\\]+/$", var.export_prefix)) && !startswith(var.export_prefix, "_")
    error_message = "export_prefix must be a key prefix ending in '/', without '*', quotes or backslashes, and not under _jobs/ or _errors/."
  }
}

variable "jobs_retention_days" {
  description = "Days the work dir _jobs/ (plans, shard lists, shard reports, summaries) is kept. A plan must outlive any retry or redrive of its job."
  type        = number
  default     = 30

  validation {
    condition     = var.jobs_retention_days >= 1 && floor(var.jobs_retention_days) == var.jobs_retention_days
    error_message = "jobs_retention_days must be a whole number of days >= 1."
  }
}

variable "errors_retention_days" {
  description = "Days the error outputs under _errors/ (the skipped rows with file, line and reason) are kept."
  type        = number
  default     = 90

  validation {
    condition     = var.errors_retention_days >= 1 && floor(var.errors_retention_days) == var.errors_retention_days
    error_message = "errors_retention_days must be a whole number of days >= 1."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object's previous version is kept (the bucket is versioned)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && floor(var.noncurrent_version_retention_days) == var.noncurrent_version_retention_days
    error_message = "noncurrent_version_retention_days must be a whole number of days >= 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which an incomplete multipart upload is aborted. The S3 output keeps its uploads open until the shard commits, so a killed shard leaves some; a retry and finish abort them, this rule catches the rest. Must exceed the longest shard run."
  type        = number
  default     = 2

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of days >= 1."
  }
}

variable "access_log_bucket" {
  description = "A bucket for the data bucket's server access logs (owned by your logging setup; it must accept S3 server access logs). Null: no access logs."
  type        = string
  default     = null
}

# ------------------------------------------------------------------------------------------------
# Triggers: S3 drops (EventBridge rules) and scheduled exports (EventBridge Scheduler)
# ------------------------------------------------------------------------------------------------

variable "drop_pipelines" {
  description = "S3 drops that start an import: an object created in the bucket under prefix, ending in suffix, runs pipeline with S3_BUCKET and S3_KEY set to it (workflow/s3_drop_rule.json and workflow/s3_drop_input.json). One EventBridge rule each, targeting the Lambda (task trigger)."
  type = list(object({
    name     = string
    pipeline = string
    prefix   = string
    suffix   = optional(string, "")
  }))
  default = [
    {
      name     = "audience-csv"
      pipeline = "send_audience_to_kafka"
      prefix   = "drops/"
      suffix   = ".csv.gz"
    },
  ]

  validation {
    condition     = length(distinct([for d in var.drop_pipelines : d.name])) == length(var.drop_pipelines)
    error_message = "drop_pipelines names must be unique."
  }

  validation {
    condition     = alltrue([for d in var.drop_pipelines : can(regex("^[a-z0-9][a-z0-9-]{0,24}$", d.name)) && can(regex("^[a-z0-9][a-z0-9_-]{0,99}$", d.pipeline))])
    error_message = "Each drop pipeline needs a name of 1 to 25 lowercase letters, digits and hyphens, and a pipeline named like a config (configs/<pipeline>.yml.liquid)."
  }

  validation {
    condition     = alltrue([for d in var.drop_pipelines : can(regex("^[^*\"\\\\]+/$", d.prefix)) && !startswith(d.prefix, "_") && !can(regex("[*\"\\\\]", d.suffix))])
    error_message = "A drop prefix must end in '/', not start with '_' (the engine's own _jobs/ and _errors/), and neither prefix nor suffix may hold '*', quotes or backslashes (they are placed into JSON strings and a wildcard pattern)."
  }
}

variable "scheduled_exports" {
  description = "Scheduled exports: an EventBridge Scheduler schedule each, invoking the Lambda (task trigger) with workflow/schedule_input.json for pipeline. schedule_expression is cron(...), rate(...) or at(...); timezone an IANA name."
  type = list(object({
    name                = string
    pipeline            = optional(string, "export_audience_to_s3")
    schedule_expression = optional(string, "cron(0 3 * * ? *)")
    timezone            = optional(string, "UTC")
    enabled             = optional(bool, true)
  }))
  default = [
    {
      name = "nightly-export"
    },
  ]

  validation {
    condition     = length(distinct([for s in var.scheduled_exports : s.name])) == length(var.scheduled_exports)
    error_message = "scheduled_exports names must be unique."
  }

  validation {
    condition     = alltrue([for s in var.scheduled_exports : can(regex("^[a-z0-9][a-z0-9-]{0,24}$", s.name)) && can(regex("^[a-z0-9][a-z0-9_-]{0,99}$", s.pipeline))])
    error_message = "Each scheduled export needs a name of 1 to 25 lowercase letters, digits and hyphens, and a pipeline named like a config (configs/<pipeline>.yml.liquid)."
  }

  validation {
    condition     = alltrue([for s in var.scheduled_exports : can(regex("^(cron|rate|at)\\(.+\\)$", s.schedule_expression))])
    error_message = "schedule_expression must be cron(...), rate(...) or at(...)."
  }
}

variable "event_bus_name" {
  description = "The EventBridge bus the job status changes are published to (PIPELINES_EVENT_BUS; detail type \"Audience Pipeline Job Status Change\"). The S3 drop rules are on the default bus, where S3 sends its events."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,256}$", var.event_bus_name))
    error_message = "event_bus_name must be the name of a bus in this account and region (not an ARN)."
  }
}

# ------------------------------------------------------------------------------------------------
# Compute: the shard tasks, the Lambda function, the Map
# ------------------------------------------------------------------------------------------------

variable "task_cpu" {
  description = "CPU units of a shard task (Fargate: 256, 512, 1024, 2048, 4096, 8192 or 16384, in a valid combination with task_memory)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be one of Fargate's CPU values: 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "task_memory" {
  description = "Memory (MiB) of a shard task, valid for task_cpu on Fargate (1024 CPU: 2048 to 8192)."
  type        = number
  default     = 2048

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 122880 && var.task_memory % 512 == 0
    error_message = "task_memory must be a multiple of 512 MiB between 512 and 122880 (and valid for task_cpu on Fargate)."
  }
}

variable "task_ephemeral_storage_gib" {
  description = "Ephemeral storage (GiB) of a shard task: 21 to 200."
  type        = number
  default     = 21

  validation {
    condition     = var.task_ephemeral_storage_gib >= 21 && var.task_ephemeral_storage_gib <= 200
    error_message = "task_ephemeral_storage_gib must be between 21 and 200."
  }
}

variable "lambda_memory_size" {
  description = "Memory (MB) of the Lambda function: status, plan and finish tasks, the API, the triggers and a small job's only shard."
  type        = number
  default     = 2048

  validation {
    condition     = var.lambda_memory_size >= 128 && var.lambda_memory_size <= 10240
    error_message = "lambda_memory_size must be between 128 and 10240 MB."
  }
}

variable "lambda_timeout" {
  description = "Timeout (seconds) of the Lambda function. It must cover a small job's shard (small_job_bytes) and a job's finish; API calls through API Gateway are cut at 30 s regardless."
  type        = number
  default     = 900

  validation {
    condition     = var.lambda_timeout >= 30 && var.lambda_timeout <= 900
    error_message = "lambda_timeout must be between 30 and 900 seconds."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency of the Lambda function; null leaves it on the account's unreserved pool."
  type        = number
  default     = null

  validation {
    condition     = var.lambda_reserved_concurrency == null || try(var.lambda_reserved_concurrency >= 1, false)
    error_message = "lambda_reserved_concurrency must be null or at least 1."
  }
}

variable "max_concurrency" {
  description = "The Distributed Map's MaxConcurrency: shard tasks of one job running at once (statemachine.json's $${max_concurrency}). Mind the account's Fargate vCPU quota and the Kafka cluster's capacity."
  type        = number
  default     = 20

  validation {
    condition     = var.max_concurrency >= 1 && var.max_concurrency <= 10000 && floor(var.max_concurrency) == var.max_concurrency
    error_message = "max_concurrency must be a whole number between 1 and 10000."
  }
}

variable "small_job_bytes" {
  description = "A job of one shard of at most this many bytes runs in the Lambda instead of a Fargate task (statemachine.json's $${small_job_bytes}); 0 sends every job to Fargate."
  type        = number
  default     = 67108864

  validation {
    condition     = var.small_job_bytes >= 0 && floor(var.small_job_bytes) == var.small_job_bytes
    error_message = "small_job_bytes must be a whole number >= 0."
  }
}

variable "statemachine_path" {
  description = "The workflow definition (Amazon States Language with $${...} placeholders). Null: statemachine.json at the repository root, beside this module."
  type        = string
  default     = null
}

variable "workflow_dir" {
  description = "The folder of the trigger files (s3_drop_rule.json, s3_drop_input.json, schedule_input.json). Null: workflow/ at the repository root, beside this module."
  type        = string
  default     = null
}

# ------------------------------------------------------------------------------------------------
# API, logs, encryption, protection
# ------------------------------------------------------------------------------------------------

variable "api_throttling_burst_limit" {
  description = "The HTTP API's burst limit (requests)."
  type        = number
  default     = 50
}

variable "api_throttling_rate_limit" {
  description = "The HTTP API's steady-state rate limit (requests per second)."
  type        = number
  default     = 20
}

variable "log_retention_days" {
  description = "Retention of the log groups (ECS shard tasks, Lambda, state machine, API access logs), in days; one of CloudWatch Logs' allowed values."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "state_machine_include_execution_data" {
  description = "Whether the state machine's log (level ALL) includes the states' input and output. Off by default: job params may name data a log should not hold."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Waiting period (days) before the module's KMS key is deleted after terraform destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "deletion_protection" {
  description = "Deletion protection of the jobs table."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource the module creates (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "metrics_namespace" {
  description = "The CloudWatch namespace of the engine's metrics (EMF lines on stdout) and of the dashboard and failed-jobs alarm; null: AudiencePipelines/<name>."
  type        = string
  default     = null
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified when the failed-jobs alarm fires and when it clears."
  type        = list(string)
  default     = []
}

variable "openlineage_url" {
  description = "An OpenLineage HTTP endpoint (e.g. Marquez): each job sends START, then COMPLETE or FAIL there. Empty: no lineage events."
  type        = string
  default     = ""
}
