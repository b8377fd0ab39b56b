# The VPC and subnets by their Name tags, as the seed module names them.
data "dify_network" "this" {
  vpc_name             = "dify-dev-vpc"
  public_subnet_names  = ["dify-dev-public-a", "dify-dev-public-c"]
  private_subnet_names = ["dify-dev-private-a", "dify-dev-private-c"]
}

# Or select subnets by tags; public/private then follows each subnet's route to an internet gateway.
data "dify_network" "tagged" {
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_tags = { app = "dify" }
}

output "private_subnet_ids" {
  value = data.dify_network.this.private_subnet_ids
}
