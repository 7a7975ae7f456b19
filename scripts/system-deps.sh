#!/usr/bin/env bash
# Debian packages that real components in the tests use: sshd (device tests over SSH on
# 127.0.0.1), adb (the adb transport), chromium (the report renders in a real browser).
# Installed only when missing; without root or apt-get those tests say why they skip.
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server openssh-client)
command -v adb >/dev/null 2>&1 || need+=(adb)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not installing ${need[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "installing ${need[*]} (once)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
