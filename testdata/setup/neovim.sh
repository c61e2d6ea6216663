#!/usr/bin/env bash
# Installs Debian's Neovim (0.7 on bookworm) for the Neovim plugin's
# headless tests (make nvim-test), unless nvim is already there.
# Idempotent; installing needs root (or sudo).
set -euo pipefail

log() { echo "setup/neovim: $*" >&2; }

if command -v nvim >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" = 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo=sudo
else
	log "no nvim; run as root (or: sudo apt-get install neovim)"
	exit 1
fi
log "installing neovim"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq neovim >/dev/null
nvim --version | head -1 >&2
