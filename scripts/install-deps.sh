#!/usr/bin/env bash
# Installs, with apt, the tools the tests and labs use that this machine
# lacks. It installs nothing that is already there, so it is cheap to run
# before every `make test`.
set -euo pipefail

# command -> Debian package
declare -A pkg=(
	[ip]=iproute2
	[nc]=netcat-openbsd
	[curl]=curl
	[ping]=iputils-ping
	[traceroute]=traceroute
	[nslookup]=dnsutils
	[iperf3]=iperf3
	[nft]=nftables
	[tcpdump]=tcpdump
	[ss]=iproute2
	[pgrep]=procps
	[dot]=graphviz
	[strace]=strace
	[lftp]=lftp
	[sudo]=sudo
)

missing=()
for cmd in "${!pkg[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
# make test runs go test -race, which needs cgo, and cgo the C compiler go
# runs: $CC, else gcc (Go's default on Linux, even where clang is). gcc only
# recommends libc6-dev, which --no-install-recommends would leave out, and
# cgo cannot build without libc's headers.
cc=${CC:-gcc}
command -v "${cc%% *}" >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing ${missing[*]}; run as root (sudo make test) to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
