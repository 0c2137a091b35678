# ------------------------------------------------------------------------------------------------
# The bucket: inputs (drops/, imports/), exports/, the work dir _jobs/, the error outputs _errors/
# ------------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed: the bucket holds drops the sender can upload again, exports that can be rerun from Kafka, and the engine's short-lived work files.
  #checkov:skip=CKV_AWS_18:Server access logging is optional (var.access_log_bucket): the log bucket belongs to the account's logging setup, which this module does not create.
  bucket        = var.bucket_name
  force_destroy = var.bucket_force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  # The work dir: plans, shard lists, shard reports and summaries.
  rule {
    id     = "expire-jobs-work-dir"
    status = "Enabled"

    filter {
      prefix = local.jobs_prefix
    }

    expiration {
      days = var.jobs_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # The error outputs: the skipped rows with their file, line and reason.
  rule {
    id     = "expire-error-outputs"
    status = "Enabled"

    filter {
      prefix = local.errors_prefix
    }

    expiration {
      days = var.errors_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  # The S3 output's multipart uploads stay open until the shard commits: a killed shard leaves them.
  # Its retry and finish abort them; this catches the ones nothing comes back for.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  # Versioning keeps overwritten and deleted objects for a while, not for ever.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  depends_on = [aws_s3_bucket_versioning.data]
}

# S3 events go to EventBridge (the default bus), where the drop rules match them.
resource "aws_s3_bucket_notification" "data" {
  bucket      = aws_s3_bucket.data.id
  eventbridge = true
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.data]
}

# A bucket policy (a resource policy): TLS only.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.data.arn,
      "${aws_s3_bucket.data.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_logging" "data" {
  count = var.access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.data.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${var.bucket_name}/"
}

# ------------------------------------------------------------------------------------------------
# The jobs table: one item per job, hash key job_id (pipelines/aws/jobs.py)
# ------------------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "jobs" {
  name                        = local.jobs_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "job_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "job_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = var.tags
}

# ------------------------------------------------------------------------------------------------
# Failed triggers: events the Lambda could not turn into a job, after every retry
# ------------------------------------------------------------------------------------------------

# The dead-letter queue of the S3-drop rule targets, the schedules and the Lambda's asynchronous
# invocations (how EventBridge and Scheduler invoke it): an import that was dropped but never
# started ends up here, with the event, instead of nowhere.
resource "aws_sqs_queue" "failed_triggers" {
  name                      = "${var.name}-failed-triggers"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue_policy" "failed_triggers" {
  count = length(local.drop_pipelines) > 0 ? 1 : 0

  queue_url = aws_sqs_queue.failed_triggers.id
  policy    = data.aws_iam_policy_document.failed_triggers[0].json
}

# A queue policy (a resource policy): the drop rules may send their undeliverable events.
data "aws_iam_policy_document" "failed_triggers" {
  count = length(local.drop_pipelines) > 0 ? 1 : 0

  statement {
    sid       = "DropRulesSendUndeliverableEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_triggers.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for rule in aws_cloudwatch_event_rule.s3_drop : rule.arn]
    }
  }
}
