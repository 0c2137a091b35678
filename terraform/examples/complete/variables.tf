variable "region" {
  description = "The AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "environment" {
  description = "The environment: part of the names, and a tag."
  type        = string
  default     = "prod"
}

variable "vpc_id" {
  description = "The VPC of the MSK cluster; the pipelines run in its subnets tagged Tier = private."
  type        = string
}

variable "msk_cluster_name" {
  description = "The MSK cluster the audiences go to (MSK IAM authentication)."
  type        = string
  default     = "audiences"
}

variable "ecr_repository_name" {
  description = "The ECR repository the engine's image (container/Dockerfile) is pushed to."
  type        = string
  default     = "audience-pipelines"
}

variable "image_tag" {
  description = "The image's tag to deploy (a release, e.g. 1.4.0; or deploy a digest with image_uri directly)."
  type        = string
}

variable "schema_registry_url" {
  description = "The schema registry of the Avro pipelines; empty: no Avro drop pipeline (drops/avro/) is deployed."
  type        = string
  default     = ""
}
