variable "aws_endpoint_url" {
  description = "The local stack's AWS emulator (AWS_ENDPOINT_URL as `pipelines dev up` prints it), e.g. http://127.0.0.1:5000: every AWS API call of the provider goes there."
  type        = string

  validation {
    condition     = can(regex("^http://(127\\.0\\.0\\.1|localhost):[0-9]{1,5}$", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be the local emulator on this machine, http://127.0.0.1:PORT: this example is not for a real AWS account."
  }
}

variable "kafka_bootstrap_servers" {
  description = "The local broker (KAFKA_BOOTSTRAP as `pipelines dev up` prints it), host:port each."
  type        = list(string)
}

variable "region" {
  description = "The emulator's region (the workflow server's AWS_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "The module's name prefix. The default is the name the local stack's emulator is started with (pipelines/devstack/resources.py NAME): its own environment names this jobs table and state machine."
  type        = string
  default     = "audience-pipelines"
}

variable "bucket_name" {
  description = "The module's bucket (drops/, imports/, exports/, _jobs/, _errors/). The default is the local stack's bucket, the README's s3://audiences/ (pipelines/devstack/resources.py WORK_BUCKET)."
  type        = string
  default     = "audiences"
}

variable "max_concurrency" {
  description = "Shard tasks of one job at once: each is a `pipelines run` process on this machine (the workflow server's ECS bridge)."
  type        = number
  default     = 2
}

variable "small_job_bytes" {
  description = "A one-shard job up to this many bytes runs in the Lambda (the workflow server's Lambda bridge) instead of an ECS task."
  type        = number
  default     = 8388608
}
