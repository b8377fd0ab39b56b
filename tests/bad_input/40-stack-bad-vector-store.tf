# expect: dify.vector_store && weaviate
resource "dify_ec2_stack" "s" {
  name = "s"
  subnet_ids = data.dify_network.n.private_subnet_ids
  dify {
    version = "1.13.3"
    vector_store = "chroma-on-a-floppy"
  }
}
