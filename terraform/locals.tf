locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # The files the module renders, from the repository root beside it by default.
  statemachine_path = coalesce(var.statemachine_path, "${path.module}/../statemachine.json")
  workflow_dir      = coalesce(var.workflow_dir, "${path.module}/../workflow")

  # Names, and the ARNs that policies need before (or without) the resources' own attributes.
  state_machine_name = var.name
  function_name      = var.name
  cluster_name       = var.name
  task_family        = "${var.name}-shard"
  jobs_table_name    = "${var.name}-jobs"

  state_machine_arn     = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}"
  event_bus_arn         = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/${var.event_bus_name}"
  task_family_arn       = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${local.task_family}:*"
  cluster_tasks_arn     = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"
  ecs_sync_rule_arn     = "arn:${local.partition}:events:${local.region}:${local.account_id}:rule/StepFunctionsGetEventsForECSTaskRule"
  bucket_arn            = "arn:${local.partition}:s3:::${var.bucket_name}"
  ecr_repository_arn    = "arn:${local.partition}:ecr:${local.ecr_image.region}:${local.ecr_image.account}:repository/${local.ecr_image.repository}"
  ecr_image             = regex("^(?P<account>[0-9]{12})\\.dkr\\.ecr\\.(?P<region>[a-z0-9-]+)\\.[^/]+/(?P<repository>[^:@]+)", var.image_uri)
  log_group_arn_prefix  = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group"
  lambda_log_group_name = "/aws/lambda/${local.function_name}"

  # The bucket's key prefixes, as the configs use them (exec.work_dir, exec.error_output).
  jobs_prefix   = "_jobs/"
  errors_prefix = "_errors/"
  read_prefixes = distinct(concat(var.input_prefixes, [for d in var.drop_pipelines : d.prefix]))
  write_prefixes = distinct([
    local.jobs_prefix,
    local.errors_prefix,
    var.export_prefix,
  ])

  # The engine's environment (pipelines/aws/deployment.py; tests/test_terraform.py checks these names):
  # ENGINE_ENV in the ECS container and the Lambda, LAMBDA_ENV in the Lambda only. PER_RUN_ENV
  # (PIPELINES_PARAMS, PIPELINES_JOB_ID) is set per task by the state machine; OPTIONAL_ENV is left
  # out on purpose. A config without exec.work_dir / exec.error_output uses the bucket's prefixes;
  # the shard tasks add their counts to their job's item in the jobs table (its live progress).
  engine_environment = {
    KAFKA_BOOTSTRAP        = join(",", var.kafka_bootstrap_servers)
    KAFKA_AUTH             = var.kafka_auth
    KAFKA_SASL_SECRET_ARN  = var.kafka_auth == "scram" ? var.kafka_sasl_secret_arn : ""
    SCHEMA_REGISTRY_URL    = var.schema_registry_url
    PIPELINES_WORK_DIR     = "s3://${var.bucket_name}/${trimsuffix(local.jobs_prefix, "/")}"
    PIPELINES_ERROR_OUTPUT = "s3://${var.bucket_name}/${local.errors_prefix}"
    PIPELINES_JOBS_TABLE   = local.jobs_table_name
    # pipelines/observe: the metrics' namespace (the dashboard's and alarm's, monitoring.tf) and lineage.
    PIPELINES_METRICS_NAMESPACE = local.metrics_namespace
    OPENLINEAGE_URL             = var.openlineage_url
  }
  lambda_only_environment = {
    PIPELINES_EVENT_BUS         = var.event_bus_name
    PIPELINES_STATE_MACHINE_ARN = local.state_machine_arn
  }

  # MSK IAM resources: the cluster, and its topics, groups and transactional ids (same NAME/UUID).
  msk_topics_arn           = var.msk_cluster_arn == null ? null : "${replace(var.msk_cluster_arn, ":cluster/", ":topic/")}/*"
  msk_groups_arn           = var.msk_cluster_arn == null ? null : "${replace(var.msk_cluster_arn, ":cluster/", ":group/")}/*"
  msk_transactional_id_arn = var.msk_cluster_arn == null ? null : "${replace(var.msk_cluster_arn, ":cluster/", ":transactional-id/")}/*"

  drop_pipelines    = { for d in var.drop_pipelines : d.name => d }
  scheduled_exports = { for s in var.scheduled_exports : s.name => s }
}
