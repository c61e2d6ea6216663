#!/bin/sh
set -e
grep -q '^base$' /usr/local/share/berth-order || { echo "needs-base: base is not installed" >&2; exit 1; }
echo needs-base >> /usr/local/share/berth-order
