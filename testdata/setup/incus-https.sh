#!/usr/bin/env bash
# Opens the main incusd's HTTPS listener on 127.0.0.1:8443 and writes an
# incus client configuration for berth's tests, as `incus remote add` would
# leave it, in $STATE/client (INCUS_CONF for the tests):
#
#   config.yml             remote berth-https (https://127.0.0.1:8443), the default
#   client.crt, client.key the client certificate incusd trusts
#   servercerts/berth-https.crt  the server's own certificate, pinned
#
# The listener is loopback only; only a trusted certificate gets in.
# Idempotent; needs root and setup/incus.sh's incusd.
set -euo pipefail

STATE=${BERTH_INCUS_HTTPS_DIR:-/var/lib/berth-incus-https}
ADDR=127.0.0.1:8443
REMOTE=berth-https

log() { echo "setup/incus-https: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "needs root"
	exit 1
fi

if ! command -v openssl >/dev/null 2>&1; then
	log "installing openssl (certificates)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi

cur=$(incus config get core.https_address)
if [ "$cur" != "$ADDR" ]; then
	if [ -n "$cur" ]; then
		log "core.https_address is $cur; leaving it and adding nothing"
		exit 1
	fi
	log "incusd listens on https://$ADDR"
	incus config set core.https_address "$ADDR"
fi

dir=$STATE/client
mkdir -p "$dir/servercerts"
chmod 700 "$STATE"
if [ ! -s "$dir/client.crt" ] || [ ! -s "$dir/client.key" ]; then
	log "making the test client's certificate"
	# As `incus remote generate-certificate` does: ECDSA P-384, self-signed.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -sha384 -days 3650 -nodes \
		-subj "/CN=berth-test" -addext "extendedKeyUsage=clientAuth" \
		-keyout "$dir/client.key" -out "$dir/client.crt" 2>/dev/null
fi
fp=$(openssl x509 -in "$dir/client.crt" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)
if ! incus config trust list -f csv -c f | grep "^${fp:0:12}" >/dev/null; then
	log "trusting the test client's certificate"
	incus config trust add-certificate "$dir/client.crt" --name berth-test >/dev/null
fi
# The certificate incusd presents: server.crt, or cluster.crt on a member.
srv=$(incus info | sed -n '/^  certificate: |/,/END CERTIFICATE/p' | sed '1d; s/^    //')
if [ -z "$srv" ]; then
	log "could not read the server's certificate from incus info"
	exit 1
fi
printf '%s\n' "$srv" >"$dir/servercerts/$REMOTE.crt"
cat >"$dir/config.yml" <<CFG
default-remote: $REMOTE
remotes:
  $REMOTE:
    addr: https://$ADDR
    protocol: incus
    auth_type: tls
    public: false
  local:
    addr: unix://
    protocol: incus
    public: false
CFG
log "remote $REMOTE ready (INCUS_CONF=$dir)"
