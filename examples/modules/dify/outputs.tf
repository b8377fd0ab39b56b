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
  value       = [dify_persistent_volume.data.id]
}
