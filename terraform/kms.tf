# One customer managed key for the module's data at rest: the bucket, the jobs table, the log
# groups, the Lambda's environment and the schedules' payloads.
resource "aws_kms_key" "this" {
  description             = "${var.name}: the audience pipelines' bucket, jobs table, logs and schedules"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

# A key policy (a resource policy): "Resource": "*" in a key policy means this key itself.
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy: its "Resource": "*" is this key alone, and the account's kms:* is AWS's default key policy statement (without it the key could not be administered, and the roles' IAM policies could not grant its use).
  #checkov:skip=CKV_AWS_111:Same: a key policy's "*" is this key alone; the account root statement is the default key policy, and the CloudWatch Logs statement is conditioned on the module's log groups.
  #checkov:skip=CKV_AWS_356:Same: in a key policy "Resource" can only be "*" (this key).
  # The account administers the key and lets its IAM policies grant use of it (the roles below get
  # kms:Decrypt/GenerateDataKey on this key's ARN through their own policies).
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the module's log groups, and only those, with the key.
  statement {
    sid = "CloudWatchLogsEncryptsTheModulesLogGroups"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:DescribeKey",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "${local.log_group_arn_prefix}:/aws/ecs/${var.name}",
        "${local.log_group_arn_prefix}:${local.lambda_log_group_name}",
        "${local.log_group_arn_prefix}:/aws/vendedlogs/states/${var.name}",
        "${local.log_group_arn_prefix}:/aws/apigateway/${var.name}",
      ]
    }
  }
}
