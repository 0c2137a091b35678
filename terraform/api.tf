# The HTTP API (pipelines/aws/api.py): POST /imports, GET /jobs, GET /jobs/{id}, each signed with SigV4
# (AWS_IAM authorization: callers need execute-api:Invoke on the route), proxied to the Lambda with
# the payload format 2.0 that pipelines.aws.api.lambda_api reads.

resource "aws_apigatewayv2_api" "http" {
  name          = var.name
  description   = "Audience pipelines: submit imports, read jobs"
  protocol_type = "HTTP"
  tags          = var.tags
}

resource "aws_apigatewayv2_integration" "engine" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.engine.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "engine" {
  for_each = toset(["POST /imports", "GET /jobs", "GET /jobs/{id}"])

  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.key
  authorization_type = "AWS_IAM"
  target             = "integrations/${aws_apigatewayv2_integration.engine.id}"
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_burst_limit   = var.api_throttling_burst_limit
    throttling_rate_limit    = var.api_throttling_rate_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      routeKey           = "$context.routeKey"
      path               = "$context.path"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      latency            = "$context.responseLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      sourceIp           = "$context.identity.sourceIp"
      userArn            = "$context.identity.userArn"
      callerAccount      = "$context.identity.accountId"
      userAgent          = "$context.identity.userAgent"
      authorizationError = "$context.authorizer.error"
    })
  }

  tags = var.tags
}
