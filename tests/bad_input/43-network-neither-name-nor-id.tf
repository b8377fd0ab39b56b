# expect: vpc_name && vpc_id
data "dify_network" "bad" {
  public_subnet_names = ["a"]
}
