# One role per part, each allowed what that part calls, on the resources it calls it on. A statement
# with "Resource": "*" holds only actions AWS authorizes on "*" alone, and says so above it
# (tests/test_terraform.py checks both).

# ================================================================================================
# Shared by the shard tasks and the Lambda: the bucket, and Kafka's credentials
# ================================================================================================

data "aws_iam_policy_document" "data_access" {
  # s3:ListBucket unconditioned on the bucket: S3 answers a missing key with 404 NoSuchKey only to a
  # caller that may list the bucket (403 otherwise), and the engine relies on it (is a plan, a shard
  # report, a manifest there yet?). The multipart-upload listing is how a retried shard and finish
  # find the uploads a killed shard left open.
  statement {
    sid = "ListTheBucket"
    actions = [
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:GetBucketLocation",
    ]
    resources = [aws_s3_bucket.data.arn]
  }

  # The inputs: drops and imports.
  statement {
    sid       = "ReadInputs"
    actions   = ["s3:GetObject"]
    resources = [for prefix in local.read_prefixes : "${aws_s3_bucket.data.arn}/${prefix}*"]
  }

  # The engine's own files: the work dir (plans, shard lists and reports, summaries), the error
  # outputs, and the exports (streaming multipart uploads, completed or aborted per shard; finish
  # deletes part files no shard report lists).
  statement {
    sid = "ReadWriteEngineFiles"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [for prefix in local.write_prefixes : "${aws_s3_bucket.data.arn}/${prefix}*"]
  }

  # The bucket's SSE-KMS key, through S3 only.
  statement {
    sid = "UseTheBucketKeyThroughS3"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

# kafka_auth = scram: the secret with the SCRAM credentials (KAFKA_SASL_SECRET_ARN), read at run time.
data "aws_iam_policy_document" "kafka_scram" {
  count = var.kafka_auth == "scram" ? 1 : 0

  lifecycle {
    precondition {
      condition     = var.kafka_sasl_secret_arn != null
      error_message = "kafka_auth = scram needs kafka_sasl_secret_arn (the secret holding the SCRAM username and password)."
    }
  }

  statement {
    sid       = "ReadTheKafkaSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.kafka_sasl_secret_arn]
  }

  dynamic "statement" {
    for_each = var.kafka_sasl_secret_kms_key_arn == null ? [] : [var.kafka_sasl_secret_kms_key_arn]

    content {
      sid       = "DecryptTheKafkaSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }
}

# kafka_auth = msk_iam: the cluster, its topics, consumer groups (exports) and transactional ids
# (a transaction per shard), through MSK IAM.
data "aws_iam_policy_document" "kafka_msk_iam" {
  count = var.kafka_auth == "msk_iam" ? 1 : 0

  lifecycle {
    precondition {
      condition     = var.msk_cluster_arn != null
      error_message = "kafka_auth = msk_iam needs msk_cluster_arn (the kafka-cluster permissions are scoped to it)."
    }
  }

  statement {
    sid = "ConnectToTheCluster"
    actions = [
      "kafka-cluster:Connect",
      "kafka-cluster:DescribeCluster",
      "kafka-cluster:WriteDataIdempotently",
    ]
    resources = [var.msk_cluster_arn]
  }

  statement {
    sid = "ReadAndWriteTopics"
    actions = [
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:DescribeTopicDynamicConfiguration", # finish: a compacted topic's end markers get an empty key
      "kafka-cluster:ReadData",
      "kafka-cluster:WriteData",
    ]
    resources = [local.msk_topics_arn]
  }

  statement {
    sid = "UseConsumerGroups"
    actions = [
      "kafka-cluster:AlterGroup",
      "kafka-cluster:DescribeGroup",
    ]
    resources = [local.msk_groups_arn]
  }

  statement {
    sid = "UseTransactionalIds"
    actions = [
      "kafka-cluster:DescribeTransactionalId",
      "kafka-cluster:AlterTransactionalId",
    ]
    resources = [local.msk_transactional_id_arn]
  }
}

# ================================================================================================
# ECS: the task execution role (pulls the image, writes the logs) and the task role (the engine)
# ================================================================================================

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task_execution" {
  name               = "${var.name}-task-execution"
  description        = "ECS task execution role of the ${var.name} shard tasks: pulls the image, writes the logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task_execution" {
  # ecr:GetAuthorizationToken: AWS authorizes it on "*" only (the token is for the registry, not a
  # repository).
  statement {
    sid       = "GetRegistryToken"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullTheImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [local.ecr_repository_arn]
  }

  statement {
    sid = "WriteTheLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.ecs.arn}:*"]
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "ECS task role of the ${var.name} shard tasks: the bucket, Kafka and their job's progress"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task_data" {
  name   = "data-access"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.data_access.json
}

# A shard adds its counts to its job's item as it commits (pipelines/aws/progress.py: one conditional
# UpdateItem per committed shard), so the job's progress shows while it runs.
data "aws_iam_policy_document" "task_jobs" {
  statement {
    sid       = "AddShardProgress"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.jobs.arn]
  }

  # The table's customer managed key, through DynamoDB only.
  statement {
    sid = "UseTheTableKeyThroughDynamoDB"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task_jobs" {
  name   = "job-progress"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_jobs.json
}

resource "aws_iam_role_policy" "task_kafka_scram" {
  count = var.kafka_auth == "scram" ? 1 : 0

  name   = "kafka-scram"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.kafka_scram[0].json
}

resource "aws_iam_role_policy" "task_kafka_msk_iam" {
  count = var.kafka_auth == "msk_iam" ? 1 : 0

  name   = "kafka-msk-iam"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.kafka_msk_iam[0].json
}

# ================================================================================================
# The Lambda function
# ================================================================================================

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${var.name}-lambda"
  description        = "Role of the ${var.name} Lambda function: job status, plans, small shards, finish, triggers, the HTTP API"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "lambda_logs" {
  statement {
    sid = "WriteTheLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }
}

resource "aws_iam_role_policy" "lambda_logs" {
  name   = "logs"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda_logs.json
}

data "aws_iam_policy_document" "lambda_network" {
  #checkov:skip=CKV_AWS_111:The network interface actions of a VPC Lambda are authorized on "*" only (Lambda creates and deletes the ENIs in the function's subnets itself); see the comment on the statement.
  #checkov:skip=CKV_AWS_356:Same: the VPC Lambda's network interface actions and X-Ray's trace uploads have no resource-level permissions.

  # A VPC Lambda's network interfaces: Lambda creates, describes and deletes them with the function's
  # role, and AWS authorizes these actions on "*" only (Describe* has no resource type; Lambda checks
  # the role for Create/Delete on "*" when the function is created).
  statement {
    sid = "ManageVpcNetworkInterfaces"
    actions = [
      "ec2:CreateNetworkInterface",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DeleteNetworkInterface",
      "ec2:AssignPrivateIpAddresses",
      "ec2:UnassignPrivateIpAddresses",
    ]
    resources = ["*"]
  }

  # Active tracing: X-Ray's trace and sampling actions have no resource-level permissions ("*" only).
  statement {
    sid = "WriteTraces"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
      "xray:GetSamplingRules",
      "xray:GetSamplingTargets",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "lambda_network" {
  name   = "vpc-and-tracing"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda_network.json
}

data "aws_iam_policy_document" "lambda_dead_letters" {
  statement {
    sid       = "SendFailedTriggers"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_triggers.arn]
  }
}

resource "aws_iam_role_policy" "lambda_dead_letters" {
  name   = "dead-letters"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda_dead_letters.json
}

resource "aws_iam_role_policy" "lambda_data" {
  name   = "data-access"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.data_access.json
}

data "aws_iam_policy_document" "lambda_jobs" {
  # pipelines/aws/jobs.py: create (PutItem), transition (UpdateItem), get (GetItem), list (Scan).
  statement {
    sid = "ReadWriteJobs"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:Scan",
    ]
    resources = [aws_dynamodb_table.jobs.arn]
  }

  # The table's customer managed key, through DynamoDB only.
  statement {
    sid = "UseTheTableKeyThroughDynamoDB"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }

  # Every status change is published as an event.
  statement {
    sid       = "PublishStatusChanges"
    actions   = ["events:PutEvents"]
    resources = [local.event_bus_arn]
  }

  # The HTTP API and the triggers start the workflow, named after the job id.
  statement {
    sid       = "StartTheWorkflow"
    actions   = ["states:StartExecution"]
    resources = [local.state_machine_arn]
  }
}

resource "aws_iam_role_policy" "lambda_jobs" {
  name   = "jobs"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda_jobs.json
}

resource "aws_iam_role_policy" "lambda_kafka_scram" {
  count = var.kafka_auth == "scram" ? 1 : 0

  name   = "kafka-scram"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.kafka_scram[0].json
}

resource "aws_iam_role_policy" "lambda_kafka_msk_iam" {
  count = var.kafka_auth == "msk_iam" ? 1 : 0

  name   = "kafka-msk-iam"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.kafka_msk_iam[0].json
}

# ================================================================================================
# The state machine
# ================================================================================================

data "aws_iam_policy_document" "states_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}",
        "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}:*",
        "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}/*",
      ]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  name               = "${var.name}-state-machine"
  description        = "Role of the ${var.name} state machine: the Lambda tasks, the shard tasks, the Distributed Map"
  assume_role_policy = data.aws_iam_policy_document.states_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "state_machine_tasks" {
  # arn:aws:states:::lambda:invoke (MarkRunning, Plan, RunInLambda, Finish, MarkSucceeded, MarkFailed).
  statement {
    sid     = "InvokeTheFunction"
    actions = ["lambda:InvokeFunction"]
    resources = [
      aws_lambda_function.engine.arn,
      "${aws_lambda_function.engine.arn}:*",
    ]
  }

  # arn:aws:states:::ecs:runTask.sync (RunShard): run the task definition's revisions in the cluster.
  statement {
    sid       = "RunShardTasks"
    actions   = ["ecs:RunTask"]
    resources = [local.task_family_arn]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  # .sync: Step Functions watches the task, and stops it when the execution is stopped.
  statement {
    sid = "WatchAndStopShardTasks"
    actions = [
      "ecs:StopTask",
      "ecs:DescribeTasks",
    ]
    resources = [local.cluster_tasks_arn]
  }

  statement {
    sid     = "PassTheTaskRoles"
    actions = ["iam:PassRole"]
    resources = [
      aws_iam_role.task.arn,
      aws_iam_role.task_execution.arn,
    ]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # .sync: the managed rule through which Step Functions learns that a task stopped.
  statement {
    sid = "ManageTheEcsSyncRule"
    actions = [
      "events:PutTargets",
      "events:PutRule",
      "events:DescribeRule",
    ]
    resources = [local.ecs_sync_rule_arn]
  }

  # The Distributed Map's ItemReader (arn:aws:states:::s3:getObject) reads shards.json from the work dir.
  statement {
    sid       = "ReadTheShardLists"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.data.arn}/${local.jobs_prefix}*"]
  }

  statement {
    sid       = "DecryptTheShardListsThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  # The Distributed Map runs its items as child executions of this state machine.
  statement {
    sid       = "StartMapChildExecutions"
    actions   = ["states:StartExecution"]
    resources = [local.state_machine_arn]
  }

  statement {
    sid = "WatchAndStopMapChildExecutions"
    actions = [
      "states:DescribeExecution",
      "states:StopExecution",
    ]
    resources = [
      "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.state_machine_name}:*",
      "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${local.state_machine_name}/*",
    ]
  }
}

resource "aws_iam_role_policy" "state_machine_tasks" {
  name   = "tasks"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine_tasks.json
}

data "aws_iam_policy_document" "state_machine_observability" {
  # Logging to CloudWatch Logs: Step Functions sets up a log delivery with the role's permissions,
  # and AWS authorizes these actions on "*" only.
  statement {
    sid = "DeliverExecutionLogs"
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  # Tracing: X-Ray's trace and sampling actions have no resource-level permissions ("*" only).
  statement {
    sid = "WriteTraces"
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
      "xray:GetSamplingRules",
      "xray:GetSamplingTargets",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine_observability" {
  name   = "logs-and-tracing"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine_observability.json
}

# ================================================================================================
# EventBridge Scheduler: invokes the Lambda for the scheduled exports
# ================================================================================================

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "Role of the ${var.name} schedules: invoke the Lambda with the scheduled exports"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid     = "InvokeTheFunction"
    actions = ["lambda:InvokeFunction"]
    resources = [
      aws_lambda_function.engine.arn,
      "${aws_lambda_function.engine.arn}:*",
    ]
  }

  # A schedule's payload is encrypted with the module's key.
  statement {
    sid       = "DecryptTheSchedules"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid       = "SendUndeliverableInvocations"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_triggers.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "invoke-lambda"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
