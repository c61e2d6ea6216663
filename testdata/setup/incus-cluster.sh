#!/usr/bin/env bash
# Starts a two-member Incus cluster on this machine for berth's tests, beside
# (and without touching) the machine's main incusd:
#
#   member m1: INCUS_DIR=/var/lib/berth-incus-m1, in this host's network and
#              mount namespaces, cluster address 198.18.0.1:8443;
#   member m2: INCUS_DIR=/var/lib/berth-incus-m2, in network namespace
#              berth-incus-m2 (and the mount namespace `ip netns exec`
#              gives it), cluster address 198.18.0.2:8443.
#
# A veth pair joins the two namespaces; 198.18.0.0/15 is reserved for
# network tests (RFC 2544), so the addresses clash with nothing real and
# are reachable only on this machine. The cluster has no managed network
# (no bridge, no dnsmasq), a `dir` storage pool and the busybox test image.
# The test client's config (remote berth-cluster, reached at m1) is written
# to $STATE/client/config.yml, with a client certificate the cluster trusts.
#
# Idempotent; needs root. `incus-cluster.sh stop` stops both members.
set -euo pipefail

STATE=${BERTH_INCUS_CLUSTER_DIR:-/var/lib/berth-incus-cluster}
NS=berth-incus-m2
M1_DIR=/var/lib/berth-incus-m1
M2_DIR=/var/lib/berth-incus-m2
M1_ADDR=198.18.0.1
M2_ADDR=198.18.0.2
PORT=8443
IMAGE=${BERTH_TEST_INCUS_IMAGE:-berth-test/busybox-1}

log() { echo "setup/incus-cluster: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
	log "needs root"
	exit 1
fi

m1() { INCUS_DIR=$M1_DIR incus "$@"; }
m2() { INCUS_DIR=$M2_DIR ip netns exec "$NS" incus "$@"; }

stop_member() { # dir
	local pid
	pid=$(cat "$1/berth-incusd.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	fi
}

if [ "${1:-}" = stop ]; then
	stop_member "$M2_DIR"
	stop_member "$M1_DIR"
	exit 0
fi

network() {
	ip netns list | grep -w "$NS" >/dev/null || ip netns add "$NS"
	if ! ip link show berth-ic0 >/dev/null 2>&1; then
		ip link add berth-ic0 type veth peer name berth-ic1
		ip link set berth-ic1 netns "$NS"
	fi
	ip addr show dev berth-ic0 | grep "$M1_ADDR/" >/dev/null || ip addr add "$M1_ADDR/24" dev berth-ic0
	ip link set berth-ic0 up
	ip -n "$NS" addr show dev berth-ic1 | grep "$M2_ADDR/" >/dev/null || ip -n "$NS" addr add "$M2_ADDR/24" dev berth-ic1
	ip -n "$NS" link set berth-ic1 up
	ip -n "$NS" link set lo up
}

# start_member DIR [netns]: incusd with its own INCUS_DIR; in the netns
# through `ip netns exec`, which also gives it its own mount namespace.
start_member() {
	local dir=$1 ns=${2:-} pid
	mkdir -p "$dir"
	pid=$(cat "$dir/berth-incusd.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		return 0
	fi
	log "starting incusd in $dir${ns:+ (netns $ns)} (log: $dir/berth-incusd.log)"
	local run=(env INCUS_DIR="$dir" PATH=/usr/libexec/incus:/usr/sbin:/usr/bin:/sbin:/bin)
	[ -n "$ns" ] && run=(ip netns exec "$ns" "${run[@]}")
	nohup "${run[@]}" /usr/libexec/incus/incusd --group incus-admin >>"$dir/berth-incusd.log" 2>&1 </dev/null &
	echo $! >"$dir/berth-incusd.pid"
	local wait=(env INCUS_DIR="$dir" incus admin waitready --timeout=60)
	[ -n "$ns" ] && wait=(ip netns exec "$ns" "${wait[@]}")
	if ! "${wait[@]}" >/dev/null 2>&1; then
		log "incusd in $dir did not come up"
		tail -20 "$dir/berth-incusd.log" >&2 || true
		exit 1
	fi
}

clustered() { [ "$(m1 cluster list -f csv 2>/dev/null | wc -l)" -ge 2 ]; }

if ! command -v openssl >/dev/null 2>&1; then
	log "installing openssl (certificates)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi

network
start_member "$M1_DIR"
start_member "$M2_DIR" "$NS"

if ! m1 cluster list >/dev/null 2>&1; then
	log "bootstrapping m1"
	m1 admin init --preseed <<EOF
config:
  core.https_address: $M1_ADDR:$PORT
  cluster.https_address: $M1_ADDR:$PORT
cluster:
  server_name: m1
  enabled: true
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
EOF
fi

if ! clustered; then
	log "joining m2"
	m1 cluster list -f csv | grep '^m2,' >/dev/null && m1 cluster remove --force --yes m2 >/dev/null 2>&1 || true
	token=$(m1 cluster add m2 --quiet 2>/dev/null || m1 cluster add m2 | tail -n1)
	m2 admin init --preseed <<EOF
cluster:
  server_name: m2
  enabled: true
  server_address: $M2_ADDR:$PORT
  cluster_token: $token
  member_config:
  - entity: storage-pool
    name: default
    key: source
    value: ""
EOF
fi

mkdir -p "$STATE/client/servercerts"
if [ ! -s "$STATE/client/client.crt" ]; then
	log "making the test client's certificate"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -sha384 -days 3650 -nodes \
		-subj "/CN=berth-test-cluster" -addext "extendedKeyUsage=clientAuth" \
		-keyout "$STATE/client/client.key" -out "$STATE/client/client.crt" 2>/dev/null
fi
fp=$(openssl x509 -in "$STATE/client/client.crt" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr A-F a-f)
if ! m1 config trust list -f csv | grep "${fp:0:12}" >/dev/null; then
	m1 config trust add-certificate "$STATE/client/client.crt" --name berth-test >/dev/null
fi
cp "$M1_DIR/cluster.crt" "$STATE/client/servercerts/berth-cluster.crt"
cat >"$STATE/client/config.yml" <<EOF
default-remote: berth-cluster
remotes:
  berth-cluster:
    addr: https://$M1_ADDR:$PORT
    protocol: incus
    auth_type: tls
    public: false
EOF

if ! m1 image info "$IMAGE" >/dev/null 2>&1; then
	log "copying $IMAGE from the main incusd"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	incus image export "$IMAGE" "$tmp/img" >/dev/null
	m1 image import "$tmp"/img* --alias "$IMAGE" >/dev/null
fi
log "cluster up: $(m1 cluster list -f csv -c nus 2>/dev/null | tr '\n' ' ')"
