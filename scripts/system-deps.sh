#!/usr/bin/env bash
# What the tests need from the system, beyond node_modules: Chromium at /usr/bin/chromium
# for playwright-core (never a downloaded browser), python3-feedparser and newsboat as
# independent feed parsers, spamassassin to score every kind of email with its local rules
# (no network). `npm test` runs this first: it installs what is missing with
# apt-get when it can (root, or sudo without a password), else stops at once with the
# exact command, rather than letting a dozen tests fail one by one.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
# Debian's own python3, where the package installs (the tests call it by this path).
/usr/bin/python3 -c 'import feedparser' 2>/dev/null || need+=(python3-feedparser)
command -v newsboat >/dev/null || need+=(newsboat)
command -v spamassassin >/dev/null || need+=(spamassassin)
[ ${#need[@]} -eq 0 ] && exit 0

install="apt-get install -y --no-install-recommends ${need[*]}"
if ! command -v apt-get >/dev/null; then
  echo "missing for the tests: ${need[*]} (Chromium must be at /usr/bin/chromium); install them with your package manager, then run npm test again" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "missing for the tests: ${need[*]}; install them with: sudo apt-get update && sudo $install" >&2
  exit 1
fi
echo "installing what the tests need: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" $install
