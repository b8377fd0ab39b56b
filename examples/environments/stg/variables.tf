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
