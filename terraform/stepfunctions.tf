# The workflow: statemachine.json as it is in the repository, its placeholders filled here, exactly
# pipelines.aws.workflow.PLACEHOLDERS (tests/test_terraform.py checks both ways).

resource "aws_sfn_state_machine" "this" {
  #checkov:skip=CKV_AWS_285:The log level is ALL (every state transition, error and cause); the states' input and output are left out by default because job params may carry values a log must not hold. var.state_machine_include_execution_data turns them on.
  name     = local.state_machine_name
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine.arn

  definition = templatefile(local.statemachine_path, {
    function_arn        = aws_lambda_function.engine.arn
    cluster_arn         = aws_ecs_cluster.this.arn
    task_definition_arn = aws_ecs_task_definition.shard.arn
    container_name      = var.container_name
    subnet_ids          = join(",", var.subnet_ids)
    security_group_ids  = join(",", var.security_group_ids)
    max_concurrency     = tostring(var.max_concurrency)
    small_job_bytes     = tostring(var.small_job_bytes)
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = var.state_machine_include_execution_data
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  tags = var.tags

  # Step Functions checks the role's logging permissions when it creates the state machine; the
  # tasks' permissions are in place before anything can start an execution.
  depends_on = [
    aws_iam_role_policy.state_machine_observability,
    aws_iam_role_policy.state_machine_tasks,
  ]
}
