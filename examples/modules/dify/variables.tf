variable "env" {
  description = "Environment name: dev, stg or prd."
  type        = string
}

variable "vpc_name" {
  description = "Name tag of the VPC."
  type        = string
}

variable "public_subnet_names" {
  description = "Name tags of the public subnets (load balancer), two zones at least."
  type        = list(string)
}

variable "private_subnet_names" {
  description = "Name tags of the private subnets (instances)."
  type        = list(string)
}

variable "office_ip_list" {
  description = "Networks allowed to reach Dify, by label (the seed module's common_office_ip_list)."
  type        = map(list(string))
}

variable "certificate_arn" {
  description = "ACM certificate for the domain."
  type        = string
}

variable "hosted_zone_id" {
  description = "Route 53 hosted zone of the domain."
  type        = string
}

variable "domain_name" {
  description = "Dify's host name."
  type        = string
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
}

variable "data_volume_size_gb" {
  description = "Size of the data volume."
  type        = number
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = false
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

variable "instance_count" {
  description = "Number of instances, across the private subnets' zones. More than one needs shared_services."
  type        = number
  default     = 1
}

variable "shared_services" {
  description = "The services every instance shares (RDS PostgreSQL, ElastiCache Redis, an S3 bucket, a vector store); required with more than one instance. Passwords are Secrets Manager secrets, read by the instances at boot."
  type = object({
    database_host                = string
    database_password_secret_arn = string
    database_password_secret_key = optional(string)
    redis_host                   = string
    redis_password_secret_arn    = optional(string)
    redis_tls                    = optional(bool, true)
    s3_bucket                    = string
    s3_region                    = string
    vector_store_url             = string
  })
  default = null
}
