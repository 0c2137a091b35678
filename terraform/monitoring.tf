# Metrics and alarms from the engine's own output, with no agent: each shard and each job end writes a
# CloudWatch Embedded Metric Format line to stdout (pipelines/observe/metrics.py), which the ECS awslogs
# driver and Lambda deliver to the log groups in logs.tf, and CloudWatch turns into metrics in
# local.metrics_namespace with the dimensions pipeline and status.
#   shard lines: Shards, RowsRead, RowsWritten, RowsSkipped, Bytes, Seconds, RowsPerSecond
#   job lines:   Jobs, JobRowsRead, JobRowsWritten, JobRowsSkipped, JobBytes, JobSeconds, JobRowsPerSecond

locals {
  metrics_namespace = coalesce(var.metrics_namespace, "AudiencePipelines/${var.name}")
  # SEARCH over every pipeline (a new pipeline shows up without a change here).
  metric_search = "{${local.metrics_namespace},pipeline,status}"
  dashboard_widgets = [
    ["Rows written (committed shards), by pipeline", "RowsWritten", "status=\"succeeded\"", "Sum"],
    ["Jobs, by pipeline and status", "Jobs", "", "Sum"],
    ["Job rows/s, by pipeline", "JobRowsPerSecond", "status=\"succeeded\"", "Average"],
    ["Rows skipped (to the error output), by pipeline", "RowsSkipped", "", "Sum"],
    ["Shard seconds (longest), by pipeline", "Seconds", "", "Maximum"],
    ["Bytes read, by pipeline", "Bytes", "status=\"succeeded\"", "Sum"],
  ]
}

resource "aws_cloudwatch_metric_alarm" "failed_jobs" {
  alarm_name          = "${var.name}-failed-jobs"
  alarm_description   = "A job of ${var.name} failed (the Jobs metric with status=failed, any pipeline). GET /jobs?status=FAILED or `pipelines jobs list --status FAILED` names it."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  evaluation_periods  = 1
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  metric_query {
    id          = "failed"
    label       = "Failed jobs"
    expression  = "SELECT SUM(Jobs) FROM SCHEMA(\"${local.metrics_namespace}\", pipeline, status) WHERE status = 'failed'"
    period      = 300
    return_data = true
  }

  tags = var.tags
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = concat(
      [for i, w in local.dashboard_widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w[0]
          region  = data.aws_region.current.name
          stat    = w[3]
          period  = 300
          metrics = [[{ expression = "SEARCH('${local.metric_search} MetricName=\"${w[1]}\" ${w[2]}', '${w[3]}', 300)", id = "e${i}" }]]
        }
      }],
      [{
        type   = "alarm"
        x      = 0
        y      = ceil(length(local.dashboard_widgets) / 2) * 6
        width  = 24
        height = 3
        properties = {
          title  = "Failed jobs"
          alarms = [aws_cloudwatch_metric_alarm.failed_jobs.arn]
        }
      }],
    )
  })
}
