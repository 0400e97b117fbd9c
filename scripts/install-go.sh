#!/usr/bin/env bash
# Installs the Go that go.mod names into /usr/local/go (or $GO_INSTALL_DIR)
# when this machine has no Go that can build the project: SPEC §7's fresh
# Debian machine, where `make up` must build the emulator. With --print it
# installs nothing and names the go to run.
#
# Debian 12's golang-go is Go 1.19, which can neither build this module nor
# fetch a newer toolchain (GOTOOLCHAIN came with Go 1.21). So the toolchain
# comes from where a newer go would fetch it: the module golang.org/toolchain
# on the Go module proxy, checked against the checksum database.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=${GO_INSTALL_DIR:-/usr/local/go}
want=$(awk '$1 == "go" { print $2; exit }' go.mod)

# Any Go from 1.21 on fetches the toolchain go.mod names by itself.
usable() {
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	[ "${v%%.*}" -gt 1 ] || { v=${v#1.}; [ "${v%%[.a-z]*}" -ge 21 ]; }
}
for g in "${GO:-}" "$(command -v go 2>/dev/null || true)" "$dest/bin/go"; do
	if [ -n "$g" ] && [ -x "$g" ] && usable "$g"; then
		[ "${1:-}" = --print ] && echo "$g"
		exit 0
	fi
done
# --print names the go the Makefile is to run: the usable one, else the
# one this script would install.
if [ "${1:-}" = --print ]; then
	echo "$dest/bin/go"
	exit 0
fi

if ! mkdir -p "$(dirname "$dest")" 2>/dev/null || [ ! -w "$(dirname "$dest")" ]; then
	echo "install-go: no Go $want; run as root (sudo make ...) to install it in $dest" >&2
	exit 1
fi
if [ -e "$dest" ]; then
	echo "install-go: $dest exists but holds no usable Go; move it away first" >&2
	exit 1
fi

need=()
for c in curl unzip; do
	command -v "$c" >/dev/null 2>&1 || need+=("$c")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "install-go: installing curl, unzip and ca-certificates"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends curl unzip ca-certificates >/dev/null
fi

case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*) echo "install-go: no Go toolchain for $(uname -m) on the module proxy" >&2; exit 1 ;;
esac
mod=golang.org/toolchain
ver=v0.0.1-go$want.linux-$arch
proxy=${GOPROXY:-https://proxy.golang.org}
proxy=${proxy%%,*}
case $proxy in http*) ;; *) proxy=https://proxy.golang.org ;; esac
sumdb=https://sum.golang.org

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-go: fetching Go $want ($mod@$ver) from $proxy"
curl -fsSL -o "$tmp/go.zip" "$proxy/$mod/@v/$ver.zip"
# As cmd/go does, ask the checksum database through the proxy first.
want_h1=$({ curl -fsSL "$proxy/sumdb/sum.golang.org/lookup/$mod@$ver" 2>/dev/null || curl -fsSL "$sumdb/lookup/$mod@$ver"; } |
	awk -v m="$mod" -v v="$ver" '$1 == m && $2 == v { print $3; exit }')
if [ -z "$want_h1" ]; then
	echo "install-go: the checksum database has no hash for $mod@$ver" >&2
	exit 1
fi

# The module's h1 hash (golang.org/x/mod/sumdb/dirhash.Hash1): the SHA-256
# of the lines "<sha256 of the file>  <its name in the zip>", one per file
# in byte order of the names, which is sha256sum's own output format.
mkdir "$tmp/x"
unzip -q "$tmp/go.zip" -d "$tmp/x"
hex=$(cd "$tmp/x" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
# shellcheck disable=SC2059 # the format is the digest as \xHH escapes
got_h1=h1:$(printf "$(sed 's/../\\x&/g' <<<"$hex")" | base64)
if [ "$got_h1" != "$want_h1" ]; then
	echo "install-go: $mod@$ver hashes to $got_h1, but the checksum database says $want_h1" >&2
	exit 1
fi

# A module zip keeps no file modes: like cmd/go, make the programs runnable.
chmod -R a+rX "$tmp/x/$mod@$ver"
find "$tmp/x/$mod@$ver/bin" "$tmp/x/$mod@$ver/pkg/tool" -type f -exec chmod a+x {} +
mv "$tmp/x/$mod@$ver" "$dest"
echo "install-go: installed $("$dest/bin/go" version) in $dest"
