# expect: vpc_name && no VPC named "nope"
data "dify_network" "bad" {
  vpc_name = "nope"
}
