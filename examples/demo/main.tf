# The demo: the provider's data sources against a local AWS emulator that `run.sh` seeds with a VPC shaped like
# the seed module's (two public and two private subnets, an internet gateway for the public ones).
terraform {
  required_providers {
    dify = {
      source = "difyops/dify"
    }
  }
}

provider "dify" {
  region                      = "us-east-1"
  allowed_account_ids         = ["123456789012"] # the emulator's account
}

data "dify_network" "dev" {
  vpc_name             = "dify-dev-vpc"
  public_subnet_names  = ["dify-dev-public-a", "dify-dev-public-c"]
  private_subnet_names = ["dify-dev-private-a", "dify-dev-private-c"]
}

data "dify_ami" "al2023" {}

output "vpc_id" {
  value = data.dify_network.dev.vpc_id
}

output "public_subnet_ids" {
  value = data.dify_network.dev.public_subnet_ids
}

output "private_subnet_ids" {
  value = data.dify_network.dev.private_subnet_ids
}

output "subnets" {
  value = data.dify_network.dev.subnets
}

output "ami" {
  value = "${data.dify_ami.al2023.id} (${data.dify_ami.al2023.name})"
}
