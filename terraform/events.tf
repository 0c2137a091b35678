# The triggers, from the files under workflow/ with exactly the placeholders pipelines/aws/triggers.py
# lists for each (tests/test_terraform.py checks them): S3 drops through EventBridge rules on the
# default bus, scheduled exports through EventBridge Scheduler. Both invoke the Lambda with
# {"task": "trigger", ...}: it creates the job under an id derived from the event and starts the
# execution named after it, so a duplicate delivery starts nothing twice.

resource "aws_cloudwatch_event_rule" "s3_drop" {
  for_each = local.drop_pipelines

  name           = "${var.name}-drop-${each.key}"
  description    = "S3 drop: an object created in ${var.bucket_name} under ${each.value.prefix}*${each.value.suffix} runs ${each.value.pipeline}"
  event_bus_name = "default"
  event_pattern = templatefile("${local.workflow_dir}/s3_drop_rule.json", {
    bucket = aws_s3_bucket.data.bucket
    prefix = each.value.prefix
    suffix = each.value.suffix
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "s3_drop" {
  for_each = local.drop_pipelines

  rule           = aws_cloudwatch_event_rule.s3_drop[each.key].name
  event_bus_name = "default"
  target_id      = "importer"
  arn            = aws_lambda_function.engine.arn

  input_transformer {
    input_paths    = local.s3_drop_input[each.key].InputPathsMap
    input_template = local.s3_drop_input[each.key].InputTemplate
  }

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.failed_triggers.arn
  }
}

locals {
  # workflow/s3_drop_input.json: the rule target's InputTransformer (InputPathsMap, InputTemplate).
  s3_drop_input = {
    for name, drop in local.drop_pipelines : name => jsondecode(templatefile("${local.workflow_dir}/s3_drop_input.json", {
      pipeline = drop.pipeline
    }))
  }
}

resource "aws_scheduler_schedule" "export" {
  for_each = local.scheduled_exports

  name                         = "${var.name}-${each.key}"
  group_name                   = "default"
  description                  = "Scheduled export: ${each.value.pipeline}"
  schedule_expression          = each.value.schedule_expression
  schedule_expression_timezone = each.value.timezone
  state                        = each.value.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = aws_kms_key.this.arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.engine.arn
    role_arn = aws_iam_role.scheduler.arn
    # workflow/schedule_input.json as written: Scheduler fills its <aws.scheduler.*> context attributes
    # in this text, and jsonencode() would escape their < and > as \u003c and \u003e, which it does not
    # recognise (the handler would get the placeholders themselves, and fail every scheduled export).
    input = templatefile("${local.workflow_dir}/schedule_input.json", {
      export_pipeline = each.value.pipeline
      export_bucket   = aws_s3_bucket.data.bucket
    })

    retry_policy {
      maximum_event_age_in_seconds = 86400
      maximum_retry_attempts       = 185
    }

    dead_letter_config {
      arn = aws_sqs_queue.failed_triggers.arn
    }
  }
}
