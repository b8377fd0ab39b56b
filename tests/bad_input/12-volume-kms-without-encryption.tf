# expect: kms_key_id && encrypted = true
resource "dify_persistent_volume" "v" {
  name = "v"
  availability_zone = "us-east-1a"
  encrypted = false
  kms_key_id = "alias/aws/ebs"
}
