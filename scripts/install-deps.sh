#!/usr/bin/env bash
# Installs what building and testing Tabby needs on Debian 12, idempotently:
# a no-op (well under a second) when everything is already there.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --gen    also the protobuf compiler (only to regenerate api/agentpb)
set -euo pipefail

need_go_major=1
need_go_minor=26

pkgs=(
  iproute2 iptables ipset iputils-ping procps kmod
  containernetworking-plugins   # reference CNI plugins: portmap (chained after calico), ptp + host-local (benchmark reference)
  bird2 frr                     # real BGP peers for the interop tests
  iperf3 tcpdump
)
if [[ "${1:-}" == "--gen" ]]; then
  pkgs+=(protobuf-compiler)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # FRR and BIRD must not start system-wide daemons: tests start their own, in namespaces.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=/usr/local/go/bin:$PATH
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go ${need_go_major}.${need_go_minor} or newer is required (not found on PATH or in /usr/local/go)" >&2
  exit 1
fi
ver=$(go env GOVERSION | sed 's/^go//')
maj=${ver%%.*}; rest=${ver#*.}; min=${rest%%.*}
if (( maj < need_go_major || (maj == need_go_major && min < need_go_minor) )); then
  echo "install-deps: Go ${need_go_major}.${need_go_minor}+ required, found go${ver}" >&2
  exit 1
fi

# Debian installs the reference CNI plugins here; tests look for them there.
if [[ ! -x /usr/lib/cni/portmap ]]; then
  echo "install-deps: /usr/lib/cni/portmap missing after installing containernetworking-plugins" >&2
  exit 1
fi
