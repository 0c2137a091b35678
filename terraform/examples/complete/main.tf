provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "audience-pipelines"
      Environment = var.environment
      Owner       = "data-platform"
      ManagedBy   = "terraform"
    }
  }
}

data "aws_ecr_repository" "engine" {
  name = var.ecr_repository_name
}

data "aws_msk_cluster" "audiences" {
  cluster_name = var.msk_cluster_name
}

data "aws_subnets" "private" {
  filter {
    name   = "vpc-id"
    values = [var.vpc_id]
  }

  tags = {
    Tier = "private"
  }
}

data "aws_vpc" "this" {
  id = var.vpc_id
}

# The shard tasks and the Lambda: out to the brokers (MSK IAM, 9098) and to HTTPS (AWS endpoints,
# the schema registry) only; nothing comes in.
resource "aws_security_group" "pipelines" {
  name        = "audience-pipelines-${var.environment}"
  description = "Audience pipelines: shard tasks and Lambda, egress to Kafka and HTTPS"
  vpc_id      = var.vpc_id

  egress {
    description = "Kafka brokers, MSK IAM"
    from_port   = 9098
    to_port     = 9098
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.this.cidr_block]
  }

  egress {
    description = "AWS endpoints and the schema registry, HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

module "audience_pipelines" {
  source = "../.."

  name      = "audience-pipelines-${var.environment}"
  image_uri = "${data.aws_ecr_repository.engine.repository_url}:${var.image_tag}"

  subnet_ids         = data.aws_subnets.private.ids
  security_group_ids = [aws_security_group.pipelines.id]

  kafka_bootstrap_servers = split(",", data.aws_msk_cluster.audiences.bootstrap_brokers_sasl_iam)
  kafka_auth              = "msk_iam"
  msk_cluster_arn         = data.aws_msk_cluster.audiences.arn
  schema_registry_url     = var.schema_registry_url

  bucket_name    = "acme-audience-pipelines-${var.environment}-${var.region}"
  input_prefixes = ["imports/"]
  export_prefix  = "exports/"

  # The Avro drop pipeline only with a schema registry: send_audience_to_kafka_avro needs
  # SCHEMA_REGISTRY_URL, and without it every drop under drops/avro/ would fail.
  drop_pipelines = concat(
    [
      {
        name     = "audience-csv"
        pipeline = "send_audience_to_kafka"
        prefix   = "drops/csv/"
        suffix   = ".csv.gz"
      },
    ],
    var.schema_registry_url == "" ? [] : [
      {
        name     = "audience-avro"
        pipeline = "send_audience_to_kafka_avro"
        prefix   = "drops/avro/"
        suffix   = ".csv.gz"
      },
    ],
  )

  scheduled_exports = [
    {
      name                = "nightly-export"
      pipeline            = "export_audience_to_s3"
      schedule_expression = "cron(0 3 * * ? *)"
      timezone            = "Europe/Berlin"
    },
  ]

  task_cpu           = 2048
  task_memory        = 4096
  max_concurrency    = 32
  small_job_bytes    = 64 * 1024 * 1024
  lambda_memory_size = 3008
  lambda_timeout     = 900

  log_retention_days = 365

  tags = {
    CostCenter = "audiences"
  }
}
