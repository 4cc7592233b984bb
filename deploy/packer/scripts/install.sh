#!/usr/bin/env bash
# Runs on the Packer build instance as root: puts what the file provisioners
# staged in /tmp/weir-staging in place, creates the weir user and its folders,
# and enables the unit. weir starts on the instances launched from the AMI, once
# cloud-init has written /etc/weir/weir.yaml and the cluster key.
set -euo pipefail

staging=/tmp/weir-staging
export DEBIAN_FRONTEND=noninteractive

# awscli: the user data fetches the config and key from SSM. ethtool: to look
# at the ENA driver, channels and offloads (README "The AF_XDP dataplane").
apt-get update -qq
apt-get install -y -qq --no-install-recommends awscli ethtool logrotate
apt-get clean

# A system user with no shell and no home: the unit grants it the capabilities.
if ! getent passwd weir >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin weir
fi

install -m 0755 -o root -g root "$staging/weir" /usr/local/bin/weir
install -d -m 0750 -o root -g weir /etc/weir
install -m 0640 -o root -g weir "$staging/weir.yaml" /etc/weir/weir.yaml
install -d -m 0750 -o weir -g weir /var/log/weir /var/lib/weir /var/lib/weir/pcap
install -m 0644 -o root -g root "$staging/weir.service" /etc/systemd/system/weir.service
install -m 0644 -o root -g root "$staging/90-weir.conf" /etc/sysctl.d/90-weir.conf
install -m 0644 -o root -g root "$staging/logrotate-weir" /etc/logrotate.d/weir
install -d -m 0755 /usr/local/share/doc/weir
install -m 0644 -o root -g root "$staging/README.md" /usr/local/share/doc/weir/README.md

# Check the staged config with the installed binary: a broken AMI fails here,
# not on the first instance. The key it names comes at boot, so a stand-in.
check=$(mktemp -d)
cp /etc/weir/weir.yaml "$check/weir.yaml"
head -c 32 /dev/urandom | base64 >"$check/cluster.key"
/usr/local/bin/weir check-config "$check/weir.yaml"
rm -rf "$check"

systemctl daemon-reload
systemctl enable weir.service
/usr/local/bin/weir version
rm -rf "$staging"
