#!/bin/sh
# Installs what the e2e tests (and deploy's checks) need, once: Debian's nix-bin (Nix 2.8 on
# Debian 12) and chromium (the web pages' browser test) on this machine, and a current Nix (Debian 13's nix-bin, 2.26) in
# a debootstrap chroot at $GARRET_NIX_CHROOT, which the tests enter with
# `unshare -m` + `chroot` (see test/e2e/nixclient_test.go). Both are cached:
# a second run only checks them.
set -eu
chroot_dir=${GARRET_NIX_CHROOT:-/var/cache/garret-test/nix-trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

missing=
command -v nix-store >/dev/null 2>&1 || missing="$missing nix-bin"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
# deploy's test checks the systemd units with systemd-analyze.
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
if [ -n "$missing" ]; then
	echo ">> installing$missing (Debian) for the e2e tests"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
# Headless Chromium for the web pages' browser test (test/e2e/web_test.go).
if ! command -v chromium >/dev/null 2>&1; then
	echo ">> installing chromium (Debian) for the browser test"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [ ! -x "$chroot_dir/usr/bin/nix" ]; then
	echo ">> making a Debian trixie chroot with nix-bin at $chroot_dir (once; ~1 min)"
	$sudo rm -rf "$chroot_dir.tmp"
	$sudo mkdir -p "$(dirname "$chroot_dir")"
	# libdbi-perl: without it nix-bin's perl dependency stays unconfigured.
	$sudo debootstrap --variant=minbase --include=nix-bin,libdbi-perl,ca-certificates \
		trixie "$chroot_dir.tmp" "$mirror" >"${TMPDIR:-/tmp}/garret-debootstrap.log" 2>&1 || {
		echo "debootstrap failed; its log:" >&2
		tail -n 30 "${TMPDIR:-/tmp}/garret-debootstrap.log" >&2
		exit 1
	}
	$sudo mv "$chroot_dir.tmp" "$chroot_dir"
fi
printf '%s; %s; chroot: %s\n' "$(nix-store --version)" "$(chromium --version 2>/dev/null || echo 'no chromium')" "$(cat "$chroot_dir/usr/share/doc/nix-bin/changelog.Debian.gz" 2>/dev/null | gzip -dc 2>/dev/null | head -n1 | cut -d' ' -f2 | tr -d '()')"
