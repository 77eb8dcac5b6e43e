#!/usr/bin/env bash
# scripts/lib/apt-mirror.sh: the Debian archive named by an apt configuration, in both formats,
# past third-party archives, disabled stanzas and comments. Prints 'N passed, M failed'.
set -uo pipefail
source "$(dirname "$0")/../../scripts/lib/apt-mirror.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
expect() {  # expect NAME WANTED KIND: debian_mirror KIND under APT_ETC=$tmp/NAME prints WANTED
  local got
  got=$(APT_ETC="$tmp/$1" debian_mirror "$3" 2>/dev/null) || got="(none)"
  if [ "$got" = "$2" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAILED: $1 $3: wanted '$2', got '$got'"; fi
}
conf() { mkdir -p "$tmp/$1/sources.list.d"; cat >"$tmp/$1/$2"; }

conf deb822 sources.list.d/debian.sources <<'X'
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
X
conf deb822 sources.list.d/nodesource.sources <<'X'
Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main
X
expect deb822 http://mirror.example/debian main
expect deb822 http://mirror.example/debian-security security

conf oneline sources.list <<'X'
deb [arch=amd64 signed-by=/k.gpg] https://download.docker.example/linux/debian bookworm stable
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://one.example/debian bookworm main contrib
deb http://one.example/debian-security bookworm-security main
X
expect oneline http://one.example/debian main
expect oneline http://one.example/debian-security security

conf disabled sources.list.d/a.sources <<'X'
Enabled: no
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://on.example/debian
Suites: trixie
Components: main contrib
X
expect disabled http://on.example/debian main
expect disabled "(none)" security

mkdir -p "$tmp/empty/sources.list.d"
expect empty "(none)" main
SPINEPARSE_DEBIAN_MIRROR=http://override.example/debian expect empty http://override.example/debian main

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
