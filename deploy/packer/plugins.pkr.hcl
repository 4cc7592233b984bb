# The Amazon plugin, for Packer 1.7 and later (since 1.10 it is no longer built
# in): `packer init deploy/packer` installs it. Kept apart from weir.pkr.hcl
# because Packer 1.6 (Debian 12's package) knows no required_plugins and has the
# plugin built in, so `packer validate -syntax-only deploy/packer/weir.pkr.hcl`
# works there too.
packer {
  required_version = ">= 1.7.0"

  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
