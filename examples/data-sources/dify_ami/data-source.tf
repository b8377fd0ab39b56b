# The latest Amazon Linux 2023 image for x86_64 (t3, m6i...) and for arm64 (t4g, m7g...).
data "dify_ami" "x86" {}

data "dify_ami" "graviton" {
  architecture = "arm64"
}

output "ami_id" {
  value = data.dify_ami.x86.id
}
