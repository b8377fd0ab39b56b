# expect: dify.release_sha256 && sha256sum
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version     = "1.13.3"
    release_url = "s3://dify-artifacts/dify-1.13.3-docker.tar.gz"
  }
}
