# `terraform test` (Terraform >= 1.11, for override_during), offline: the AWS provider is mocked, so
# nothing is created and no credentials are needed, but the provider's schema and argument
# validation are real, and so are the templatefile() renderings of statemachine.json and
# workflow/*.json. Plans only: the mocked values below stand in for the computed ARNs at plan time.
# tests/test_terraform.py runs it where a terraform binary and a local copy of the AWS provider are.

mock_provider "aws" {
  override_during = plan

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # The provider checks that a policy argument is JSON; the documents themselves are checked by
  # tests/test_terraform.py and checkov.
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:audience-pipelines"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:audience-pipelines/invocations"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/audience-pipelines" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/audience-pipelines-shard:7" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::acme-audiences" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/audience-pipelines-jobs" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/audience-pipelines-drop" }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = { execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234" }
  }
  mock_resource "aws_sfn_state_machine" {
    defaults = { arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:audience-pipelines" }
  }
}

variables {
  image_uri               = "123456789012.dkr.ecr.eu-west-1.example.com/audience-pipelines:1.0.0"
  subnet_ids              = ["subnet-0aaa", "subnet-0bbb"]
  security_group_ids      = ["sg-0ccc"]
  kafka_bootstrap_servers = ["b-1.kafka.internal:9092", "b-2.kafka.internal:9092"]
  bucket_name             = "acme-audiences"
}

run "defaults" {
  command = plan

  # The state machine: every placeholder filled with the resources it names.
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.MarkRunning.Parameters.FunctionName == aws_lambda_function.engine.arn
    error_message = "MarkRunning must invoke the module's Lambda function."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Shards.ItemProcessor.States.RunShard.Parameters.Cluster == aws_ecs_cluster.this.arn
    error_message = "RunShard must run in the module's cluster."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Shards.ItemProcessor.States.RunShard.Parameters.TaskDefinition == aws_ecs_task_definition.shard.arn
    error_message = "RunShard must run the module's task definition (with its revision)."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Shards.ItemProcessor.States.RunShard.Parameters.Overrides.ContainerOverrides[0].Name == jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].name
    error_message = "The container override must name the task definition's container."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Config.Parameters["subnets.$"] == "States.StringSplit('subnet-0aaa,subnet-0bbb', ',')"
    error_message = "The subnets reach the state machine comma-joined."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Config.Parameters["security_groups.$"] == "States.StringSplit('sg-0ccc', ',')"
    error_message = "The security groups reach the state machine comma-joined."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Config.Parameters["max_concurrency.$"] == "States.StringToJson('20')"
    error_message = "max_concurrency reaches the state machine as a JSON number in a string."
  }
  assert {
    condition     = jsondecode(aws_sfn_state_machine.this.definition).States.Config.Parameters["small_job_bytes.$"] == "States.StringToJson('67108864')"
    error_message = "small_job_bytes reaches the state machine as a JSON number in a string."
  }
  assert {
    condition     = aws_sfn_state_machine.this.logging_configuration[0].level == "ALL" && !aws_sfn_state_machine.this.logging_configuration[0].include_execution_data
    error_message = "The state machine logs at level ALL, without execution data by default."
  }

  # The shard task definition and the Lambda function.
  assert {
    condition     = jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].stopTimeout == 30
    error_message = "The container's stopTimeout must be 30 s."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].logConfiguration.logDriver == "awslogs"
    error_message = "The container logs with awslogs."
  }
  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].environment : e.name] == ["KAFKA_AUTH", "KAFKA_BOOTSTRAP", "KAFKA_SASL_SECRET_ARN", "OPENLINEAGE_URL", "PIPELINES_ERROR_OUTPUT", "PIPELINES_JOBS_TABLE", "PIPELINES_METRICS_NAMESPACE", "PIPELINES_WORK_DIR", "SCHEMA_REGISTRY_URL"]
    error_message = "The container's environment must be pipelines.aws.deployment.task_environment()."
  }
  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].environment : e.name => e.value }["KAFKA_BOOTSTRAP"] == "b-1.kafka.internal:9092,b-2.kafka.internal:9092"
    error_message = "KAFKA_BOOTSTRAP is the brokers, comma-joined."
  }
  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].environment : e.name => e.value }["PIPELINES_WORK_DIR"] == "s3://acme-audiences/_jobs" && aws_lambda_function.engine.environment[0].variables["PIPELINES_WORK_DIR"] == "s3://acme-audiences/_jobs"
    error_message = "PIPELINES_WORK_DIR (the default exec.work_dir) is the bucket's _jobs prefix, in the container and the Lambda."
  }
  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].environment : e.name => e.value }["PIPELINES_ERROR_OUTPUT"] == "s3://acme-audiences/_errors/" && aws_lambda_function.engine.environment[0].variables["PIPELINES_ERROR_OUTPUT"] == "s3://acme-audiences/_errors/"
    error_message = "PIPELINES_ERROR_OUTPUT (the default exec.error_output) is the bucket's _errors/ prefix, in the container and the Lambda."
  }
  assert {
    condition     = { for e in jsondecode(aws_ecs_task_definition.shard.container_definitions)[0].environment : e.name => e.value }["PIPELINES_JOBS_TABLE"] == aws_dynamodb_table.jobs.name
    error_message = "The shard tasks know the jobs table, to add their progress to their job."
  }
  assert {
    condition     = join(",", sort(keys(aws_lambda_function.engine.environment[0].variables))) == "KAFKA_AUTH,KAFKA_BOOTSTRAP,KAFKA_SASL_SECRET_ARN,OPENLINEAGE_URL,PIPELINES_ERROR_OUTPUT,PIPELINES_EVENT_BUS,PIPELINES_JOBS_TABLE,PIPELINES_METRICS_NAMESPACE,PIPELINES_STATE_MACHINE_ARN,PIPELINES_WORK_DIR,SCHEMA_REGISTRY_URL"
    error_message = "The Lambda's environment must be pipelines.aws.deployment.lambda_environment()."
  }
  assert {
    condition     = aws_lambda_function.engine.environment[0].variables["PIPELINES_STATE_MACHINE_ARN"] == "arn:aws:states:eu-west-1:123456789012:stateMachine:audience-pipelines"
    error_message = "PIPELINES_STATE_MACHINE_ARN must be the state machine's ARN."
  }
  assert {
    condition     = aws_lambda_function.engine.package_type == "Image" && aws_lambda_function.engine.image_uri == var.image_uri
    error_message = "The Lambda runs the same image as the shard tasks."
  }

  # The triggers, rendered from workflow/.
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.s3_drop["audience-csv"].event_pattern).detail.bucket.name == ["acme-audiences"]
    error_message = "The drop rule matches the module's bucket."
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.s3_drop["audience-csv"].event_pattern).detail.object.key[0].wildcard == "drops/*.csv.gz"
    error_message = "The drop rule matches prefix*suffix."
  }
  assert {
    condition     = aws_cloudwatch_event_target.s3_drop["audience-csv"].arn == aws_lambda_function.engine.arn && strcontains(aws_cloudwatch_event_target.s3_drop["audience-csv"].input_transformer[0].input_template, "\"task\": \"trigger\", \"pipeline\": \"send_audience_to_kafka\"")
    error_message = "The drop rule sends the trigger task for its pipeline to the Lambda."
  }
  assert {
    condition     = jsondecode(aws_scheduler_schedule.export["nightly-export"].target[0].input).task == "trigger" && jsondecode(aws_scheduler_schedule.export["nightly-export"].target[0].input).pipeline == "export_audience_to_s3"
    error_message = "The schedule sends the trigger task of export_audience_to_s3."
  }
  assert {
    condition     = aws_scheduler_schedule.export["nightly-export"].schedule_expression == "cron(0 3 * * ? *)"
    error_message = "The default export schedule is daily at 03:00."
  }

  # The API, the table, the bucket.
  assert {
    condition     = join(",", sort([for r in aws_apigatewayv2_route.engine : r.route_key])) == "GET /jobs,GET /jobs/{id},POST /imports" && alltrue([for r in aws_apigatewayv2_route.engine : r.authorization_type == "AWS_IAM"])
    error_message = "The API has POST /imports, GET /jobs and GET /jobs/{id}, all with IAM authorization."
  }
  assert {
    condition     = aws_dynamodb_table.jobs.hash_key == "job_id" && aws_dynamodb_table.jobs.point_in_time_recovery[0].enabled
    error_message = "The jobs table is keyed by job_id, with point-in-time recovery."
  }
  assert {
    condition     = aws_s3_bucket_notification.data.eventbridge
    error_message = "The bucket sends its events to EventBridge."
  }
  assert {
    condition     = length(aws_iam_role_policy.task_kafka_scram) == 0 && length(aws_iam_role_policy.task_kafka_msk_iam) == 0
    error_message = "kafka_auth = none grants no Kafka permissions."
  }
}

run "scram" {
  command = plan

  variables {
    kafka_auth                    = "scram"
    kafka_sasl_secret_arn         = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka/audiences-AbCdEf"
    kafka_sasl_secret_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = aws_lambda_function.engine.environment[0].variables["KAFKA_SASL_SECRET_ARN"] == var.kafka_sasl_secret_arn && aws_lambda_function.engine.environment[0].variables["KAFKA_AUTH"] == "scram"
    error_message = "The Lambda gets the secret's ARN."
  }
  assert {
    condition     = length(aws_iam_role_policy.task_kafka_scram) == 1 && length(aws_iam_role_policy.lambda_kafka_scram) == 1 && length(aws_iam_role_policy.task_kafka_msk_iam) == 0
    error_message = "scram: the task role and the Lambda role may read the secret."
  }
}

run "scram_needs_a_secret" {
  command = plan

  variables {
    kafka_auth = "scram"
  }

  expect_failures = [data.aws_iam_policy_document.kafka_scram]
}

run "msk_iam" {
  command = plan

  variables {
    kafka_auth              = "msk_iam"
    msk_cluster_arn         = "arn:aws:kafka:eu-west-1:123456789012:cluster/audiences/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-2"
    kafka_bootstrap_servers = ["b-1.audiences.kafka.internal:9098"]
  }

  assert {
    condition     = length(aws_iam_role_policy.task_kafka_msk_iam) == 1 && length(aws_iam_role_policy.lambda_kafka_msk_iam) == 1 && length(aws_iam_role_policy.task_kafka_scram) == 0
    error_message = "msk_iam: the task role and the Lambda role get the MSK IAM permissions."
  }
  assert {
    condition     = local.msk_topics_arn == "arn:aws:kafka:eu-west-1:123456789012:topic/audiences/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-2/*"
    error_message = "The topics' ARN is the cluster's NAME/UUID under topic/."
  }
}

run "drop_prefix_must_be_a_folder" {
  command = plan

  variables {
    drop_pipelines = [{ name = "bad", pipeline = "send_audience_to_kafka", prefix = "drops", suffix = ".csv" }]
  }

  expect_failures = [var.drop_pipelines]
}

run "no_triggers" {
  command = plan

  variables {
    drop_pipelines    = []
    scheduled_exports = []
  }

  assert {
    condition     = length(aws_cloudwatch_event_rule.s3_drop) == 0 && length(aws_scheduler_schedule.export) == 0 && length(aws_sqs_queue_policy.failed_triggers) == 0
    error_message = "Without drop pipelines and scheduled exports, no rule, schedule or queue policy."
  }
}
