output "url" {
  description = "Dify's URL."
  value       = "https://${dify_dns_record.this.fqdn}"
}

output "alb_dns_name" {
  description = "The load balancer's DNS name."
  value       = dify_alb.this.dns_name
}

output "instance_ids" {
  description = "Instance ids (Session Manager targets)."
  value       = dify_ec2_stack.this.instance_ids
}

output "volume_ids" {
  description = "Data volume ids."
  value       = dify_persistent_volume.data[*].id
}

output "availability_zones" {
  description = "Availability zone of each instance."
  value       = dify_ec2_stack.this.availability_zones
}

output "shared_secret_arn" {
  description = "The shared application secret (more than one instance), or null."
  value       = dify_ec2_stack.this.shared_secret_arn
}

output "instance_policy_json" {
  description = "The IAM policy the instance role needs (dify_instance_policy)."
  value       = data.dify_instance_policy.this.json
}
