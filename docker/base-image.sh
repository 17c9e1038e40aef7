#!/usr/bin/env bash
# Make a Debian bookworm base image from Debian's package archive alone (debootstrap, then docker import), for
# machines where no image registry answers: `make base-image`, then build with BASE_IMAGE=lepton-base:bookworm.
#   docker/base-image.sh [NAME]     (root: debootstrap needs it; about a minute)
set -euo pipefail
name=${1:-lepton-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }
root=$(mktemp -d /tmp/lepton-base-XXXXXX)
chmod 755 "$root"  # the image's /: mktemp made it 0700, which locks out every user but root
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror"
# security and point-release updates, as debian:bookworm-slim has them; no package lists or .debs kept
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SOURCES
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
tar --numeric-owner -C "$root" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$name"
docker image ls "$name"
