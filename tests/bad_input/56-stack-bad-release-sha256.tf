# expect: dify.release_sha256 && 64 characters
resource "dify_ec2_stack" "s" {
  name       = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version        = "1.13.3"
    release_url    = "https://artifacts.internal/dify-1.13.3-docker.tar.gz"
    release_sha256 = "d41d8cd98f00b204e9800998ecf8427e"
  }
}
