#!/usr/bin/env bash
# Build a base image for netlog's Dockerfile without any container registry.
#
#   sudo docker/base-image.sh [IMAGE]        # default IMAGE: netlog-base:local
#
# `docker compose up` builds FROM python:3.12-slim, which needs a registry.
# Where none is reachable, this makes a Debian bookworm image (Python 3.11,
# python3-venv, CA certificates) from a Debian mirror instead: debootstrap
# into a temporary directory, then `docker import`.  Then, with wheels made on
# this machine (bookworm's Python is 3.11):
#
#   python3.11 -m pip wheel . -w dist/wheels
#   NETLOG_BASE=netlog-base:local NETLOG_WHEELS=dist/wheels docker compose up -d
#
# The mirror is the one this machine's apt uses (docker/debian_mirror.py),
# else deb.debian.org; NETLOG_BASE_MIRROR overrides it (a local mirror,
# file:/…).  An image already there is kept; --force builds it again.
#
# Needs root (debootstrap), debootstrap (apt-get install debootstrap) and a
# running Docker engine.  About two minutes and 170 MB.  Prints one line on
# stdout when done, or one line on stderr and exits 1.  Progress and
# debootstrap's own output go to stderr only with -v.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
image=netlog-base:local
force=0
verbose=0

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
die() {
    echo "base-image: $*" >&2
    exit 1
}

for arg in "$@"; do
    case $arg in
        -h | --help) usage; exit 0 ;;
        --force) force=1 ;;
        -v | --verbose) verbose=1 ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) image=$arg ;;
    esac
done

command -v docker >/dev/null 2>&1 || die "no docker command on PATH"
docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running? are you allowed to use it?)"
if [ "$force" = 0 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image is already there (--force builds it again)"
    exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root: sudo $0 $*"
command -v debootstrap >/dev/null 2>&1 || die "no debootstrap on PATH (apt-get install debootstrap)"

mirror=${NETLOG_BASE_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(python3 "$HERE/debian_mirror.py" 2>/dev/null) || mirror=http://deb.debian.org/debian
fi

rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/netlog-base.XXXXXX")
# mktemp's 0700 would become the image's / : no user but root could reach a file
chmod 0755 "$rootfs"
log=$rootfs.log
cleanup() {
    # debootstrap mounts /proc and /sys in the target while it runs; a failed
    # run can leave them mounted, and rm must not walk into them.  Runs on
    # EXIT under `set -e`: nothing here may fail, or the exit status would.
    local status=$? mount
    set +e
    while read -r mount; do
        umount -l "$mount" 2>/dev/null
    done < <(grep -o " $rootfs/[^ ]*" /proc/mounts 2>/dev/null | sort -r)
    rm -rf --one-file-system "$rootfs"
    exit "$status"
}
trap cleanup EXIT

started=$SECONDS
[ "$verbose" = 1 ] && echo "base-image: debootstrap $SUITE from $mirror into $rootfs" >&2
if [ "$verbose" = 1 ]; then
    timeout 1200 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >&2 ||
        die "debootstrap $SUITE from $mirror failed"
else
    timeout 1200 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" \
        >"$log" 2>&1 || die "debootstrap $SUITE from $mirror failed: $(tail -1 "$log") (whole log: $log)"
    rm -f "$log"
fi
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
python=$(chroot "$rootfs" python3 --version 2>&1) || die "no python3 in the $SUITE root file system"

tar -C "$rootfs" --one-file-system -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "netlog docker/base-image.sh: debootstrap $SUITE + $PACKAGES from $mirror" \
    - "$image" >/dev/null || die "docker import of the $SUITE root file system as $image failed"
echo "built $image ($SUITE, $python) in $((SECONDS - started)) s"
