# The weir AMI: Debian 12 with weir, its systemd unit, sysctls, logrotate snippet
# and an example configuration, for arm64 (Graviton) and x86_64.
#
# First build the binaries on your machine (no cgo, so cross-compiling is plain):
#   deploy/packer/scripts/build-weir.sh          # both: deploy/packer/build/weir-linux-{arm64,amd64}
# Then, with AWS credentials in the environment:
#   packer init deploy/packer                    # Packer >= 1.7: the Amazon plugin
#   packer build deploy/packer                   # both AMIs
#   packer build -only='*.arm64' deploy/packer   # one of them
# The instance the AMI boots reads /etc/weir/weir.yaml (the module's user data
# writes it) and /etc/weir/cluster.key (from SSM; the AMI carries no key).

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "ami_prefix" {
  type    = string
  default = "weir"
}

variable "weir_version" {
  description = "Goes into the AMI's name and tags; `git describe --always --dirty` is a good value."
  type        = string
  default     = "dev"
}

variable "subnet_id" {
  description = "Where the build instance runs; empty: the default VPC."
  type        = string
  default     = ""
}

locals {
  # The Debian project's AWS account: official Debian AMIs.
  debian_owner = "136693071363"
  stamp        = formatdate("YYYYMMDD-hhmm", timestamp())
  tags = {
    Application = "weir"
    Version     = var.weir_version
  }
}

source "amazon-ebs" "arm64" {
  region        = var.region
  subnet_id     = var.subnet_id
  instance_type = "c7g.large"
  ssh_username  = "admin"
  ami_name      = "${var.ami_prefix}-${var.weir_version}-debian12-arm64-${local.stamp}"
  ena_support   = true
  # IMDSv2 only, in the build instance and in the AMI's default.
  imds_support = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  source_ami_filter {
    owners      = [local.debian_owner]
    most_recent = true
    filters = {
      name                = "debian-12-arm64-*"
      architecture        = "arm64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  tags = merge(local.tags, { Architecture = "arm64" })
}

source "amazon-ebs" "amd64" {
  region        = var.region
  subnet_id     = var.subnet_id
  instance_type = "c7i.large"
  ssh_username  = "admin"
  ami_name      = "${var.ami_prefix}-${var.weir_version}-debian12-amd64-${local.stamp}"
  ena_support   = true
  imds_support  = "v2.0"
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  source_ami_filter {
    owners      = [local.debian_owner]
    most_recent = true
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  tags = merge(local.tags, { Architecture = "x86_64" })
}

build {
  sources = ["source.amazon-ebs.arm64", "source.amazon-ebs.amd64"]

  # Everything goes to a staging folder first; install.sh puts it in place as
  # root with the right owners and modes.
  provisioner "shell" {
    inline = ["mkdir -p /tmp/weir-staging"]
  }

  provisioner "file" {
    source      = "${path.root}/build/weir-linux-${source.name}"
    destination = "/tmp/weir-staging/weir"
  }

  provisioner "file" {
    sources = [
      "${path.root}/../systemd/weir.service",
      "${path.root}/../sysctl/90-weir.conf",
      "${path.root}/../config/weir.yaml",
      "${path.root}/../../README.md",
    ]
    destination = "/tmp/weir-staging/"
  }

  # Its own name: the snippet is called weir too, like the binary.
  provisioner "file" {
    source      = "${path.root}/../logrotate/weir"
    destination = "/tmp/weir-staging/logrotate-weir"
  }

  provisioner "shell" {
    script          = "${path.root}/scripts/install.sh"
    execute_command = "sudo -E bash '{{ .Path }}'"
  }
}
