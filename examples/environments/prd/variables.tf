variable "region" {
  type    = string
  default = "ap-northeast-1"
}

variable "aws_account_id" {
  description = "The only account this environment may change."
  type        = string
}

variable "vpc_name" {
  type = string
}

variable "public_subnet_names" {
  type = list(string)
}

variable "private_subnet_names" {
  type = list(string)
}

variable "common_office_ip_list" {
  description = "Networks allowed to reach Dify, by label."
  type        = map(list(string))
}

variable "certificate_arn" {
  type = string
}

variable "hosted_zone_id" {
  type = string
}

variable "domain_name" {
  type = string
}

variable "instance_type" {
  type = string
}

variable "data_volume_size_gb" {
  type = number
}

variable "deletion_protection" {
  type    = bool
  default = false
}

variable "instance_count" {
  description = "Instances, one per private subnet's zone."
  type        = number
  default     = 2
}

variable "iam_instance_profile" {
  description = "Instance profile whose role carries the module's instance_policy_json."
  type        = string
}

variable "database_host" {
  description = "RDS PostgreSQL endpoint address."
  type        = string
}

variable "database_password_secret_arn" {
  description = "The RDS-managed master user secret (a JSON object with `password`)."
  type        = string
}

variable "redis_host" {
  description = "ElastiCache Redis primary endpoint."
  type        = string
}

variable "redis_password_secret_arn" {
  description = "Secret holding the Redis AUTH token, or null."
  type        = string
  default     = null
}

variable "s3_bucket" {
  description = "Bucket for uploads and plugins."
  type        = string
}

variable "vector_store_url" {
  description = "URL of the shared vector store (weaviate by default)."
  type        = string
}
