# The shard tasks: one Fargate task per shard, started by the state machine's Distributed Map
# (ecs:runTask.sync) with the command `run configs/<pipeline>.yml.liquid --plan URI --shard N` and
# PIPELINES_JOB_ID, PIPELINES_PARAMS as container overrides. A shard adds its counts to its job's
# item in the jobs table when it commits (the job's live progress).

resource "aws_ecs_cluster" "this" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]
}

resource "aws_ecs_task_definition" "shard" {
  family                   = local.task_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  ephemeral_storage {
    size_in_gib = var.task_ephemeral_storage_gib
  }

  # The root file system is read-only; the engine writes temporary files to /tmp only (as in the
  # Lambda, where /tmp is the only writable place too).
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = var.container_name
      image                  = var.image_uri
      essential              = true
      readonlyRootFilesystem = true
      # The engine aborts its shard within 30 s of SIGTERM (Fargate allows up to 120).
      stopTimeout = 30
      # Exactly pipelines.aws.deployment.task_environment() (tests/test_terraform.py checks it).
      environment = [for name in sort(keys(local.engine_environment)) : { name = name, value = local.engine_environment[name] }]
      mountPoints = [
        {
          sourceVolume  = "tmp"
          containerPath = "/tmp"
          readOnly      = false
        },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.ecs.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "shard"
        }
      }
    },
  ])

  tags = var.tags
}
