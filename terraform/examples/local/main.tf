# The module applied to the local stack's AWS emulator (moto, served by the workflow server of
# `pipelines dev up`): bin/deploy-local runs this. Every endpoint is the emulator; the credentials
# are the emulator's dummy ones, from the environment (bin/deploy-local sets them), never here.

provider "aws" {
  region                      = var.region
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    apigatewayv2   = var.aws_endpoint_url
    cloudwatchlogs = var.aws_endpoint_url
    dynamodb       = var.aws_endpoint_url
    ec2            = var.aws_endpoint_url
    ecr            = var.aws_endpoint_url
    ecs            = var.aws_endpoint_url
    events         = var.aws_endpoint_url
    iam            = var.aws_endpoint_url
    kms            = var.aws_endpoint_url
    lambda         = var.aws_endpoint_url
    s3             = var.aws_endpoint_url
    scheduler      = var.aws_endpoint_url
    sfn            = var.aws_endpoint_url
    sqs            = var.aws_endpoint_url
    sts            = var.aws_endpoint_url
  }

  default_tags {
    tags = {
      Project     = "audience-pipelines"
      Environment = "local"
      ManagedBy   = "terraform"
    }
  }
}

# The image's repository: the module takes an ECR image URI. No image is pushed; the workflow
# server runs this checkout (or, with `pipelines dev up --image`, a local image) instead.
resource "aws_ecr_repository" "engine" {
  #checkov:skip=CKV_AWS_136:The local example's repository holds no image (nothing is pushed to the emulator); it only makes the module's image_uri.
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = true

  image_scanning_configuration {
    scan_on_push = true
  }
}

# The network the shard tasks and the Lambda are placed in (moto's ECS needs DNS hostnames on for
# awsvpc tasks). Nothing is routed: the processes run on this machine.
resource "aws_vpc" "local" {
  #checkov:skip=CKV2_AWS_11:The emulator's VPC carries no traffic (the shard tasks and the Lambda are processes on this machine), so there is nothing to log.
  #checkov:skip=CKV2_AWS_12:The emulator's VPC carries no traffic; its default security group is never used.
  cidr_block           = "10.42.0.0/16"
  enable_dns_hostnames = true
  enable_dns_support   = true

  tags = {
    Name = var.name
  }
}

resource "aws_subnet" "local" {
  vpc_id     = aws_vpc.local.id
  cidr_block = "10.42.1.0/24"

  tags = {
    Name = var.name
  }
}

resource "aws_security_group" "shards" {
  name        = "${var.name}-shards"
  description = "Audience pipelines: shard tasks and Lambda, egress to Kafka and HTTPS"
  vpc_id      = aws_vpc.local.id

  egress {
    description = "The local broker and the emulator"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [aws_vpc.local.cidr_block]
  }
}

module "audience_pipelines" {
  source = "../.."

  name      = var.name
  image_uri = "${aws_ecr_repository.engine.repository_url}:local"

  subnet_ids         = [aws_subnet.local.id]
  security_group_ids = [aws_security_group.shards.id]

  kafka_bootstrap_servers = var.kafka_bootstrap_servers
  kafka_auth              = "none"

  bucket_name          = var.bucket_name
  bucket_force_destroy = true
  input_prefixes       = ["imports/", "samples/"]

  max_concurrency = var.max_concurrency
  small_job_bytes = var.small_job_bytes

  # So that `terraform destroy` (bin/deploy-local --destroy) removes everything at once.
  deletion_protection      = false
  kms_deletion_window_days = 7
}
