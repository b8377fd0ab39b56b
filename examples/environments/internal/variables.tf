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

variable "private_subnet_names" {
  description = "Name tags of the private subnets: the load balancer and the instances, two zones at least."
  type        = list(string)
}

variable "lambda_security_group_id" {
  description = "Security group of the Lambda functions that call Dify's API (sg-…)."
  type        = string
}

variable "cloudfront_prefix_list_id" {
  description = "Id (pl-…) of com.amazonaws.global.cloudfront.origin-facing in this region: aws ec2 describe-managed-prefix-lists --filters Name=prefix-list-name,Values=com.amazonaws.global.cloudfront.origin-facing"
  type        = string
}

variable "private_zone_id" {
  description = "Route 53 private hosted zone associated with the VPC (dify.internal)."
  type        = string
}

variable "internal_domain_name" {
  description = "Dify's name inside the VPC, in the private zone."
  type        = string
}

variable "public_url" {
  description = "The URL browsers use: CloudFront's (https://…)."
  type        = string
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

variable "iam_instance_profile" {
  description = "Instance profile with AmazonSSMManagedInstanceCore (Session Manager)."
  type        = string
  default     = "dify-ssm"
}

variable "dify_version" {
  description = "Dify release tag."
  type        = string
  default     = "1.13.3"
}
