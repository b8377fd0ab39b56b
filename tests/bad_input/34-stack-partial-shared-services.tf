# expect: instance_count && external_redis
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  instance_count = 2
  dify {
    version = "1.13.3"
    external_database {
      host = "db.internal"
    }
  }
}
