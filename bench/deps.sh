#!/bin/sh
# Installs what `make bench` needs, once: Debian's nix-bin (the client the
# suite pushes with), nginx-light (the peer serving the same corpus as static
# files) and wrk (the load generator). A second run only checks them.
set -eu
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

missing=
command -v nix-store >/dev/null 2>&1 || missing="$missing nix-bin"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
if [ -n "$missing" ]; then
	echo ">> installing$missing (Debian) for the benchmarks"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
	# The package starts a system nginx on port 80; the suite runs its own.
	if [ -x /usr/sbin/nginx ] && command -v systemctl >/dev/null 2>&1; then
		$sudo systemctl disable --now nginx >/dev/null 2>&1 || true
	fi
fi
printf '%s; %s; %s\n' "$(nix-store --version)" "$(/usr/sbin/nginx -v 2>&1)" "$(wrk -v 2>&1 | head -n1 | sed 's/ Copyright.*//')"
