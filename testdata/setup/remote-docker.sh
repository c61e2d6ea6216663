#!/usr/bin/env bash
# Starts the remote-Docker test bed on this machine, for the tests of
# remote engines (issue 16): a second dockerd reached only over TLS on
# 127.0.0.1, and an sshd on 127.0.0.1 for ssh:// endpoints. Both are
# "remote" to berth because of their endpoints, though the disk is shared.
#
#   tcp://127.0.0.1:2386 with TLS  client material in $BED/client
#                                  (DOCKER_CERT_PATH); its own data-root,
#                                  exec-root, pidfile and network namespace;
#                                  no bridge, no iptables, so containers have
#                                  no network but loopback (the agent's
#                                  stream needs none).
#   ssh://berth-ssh@127.0.0.1:2222 key-only sshd on loopback, logging in
#                                  berth-ssh (shell /bin/sh, group docker:
#                                  root's .bashrc is slow); its docker is the
#                                  first dockerd. The key is root's, given
#                                  to ssh by /etc/ssh/ssh_config.d, and the
#                                  host key is in the global known_hosts.
#                                  ssh://berth-ssh@localhost:2222 is listed
#                                  with a wrong key on purpose: the tests'
#                                  host-key mismatch.
#
# The test images are copied from the first dockerd (docker save | load)
# when the second lacks them. Idempotent and cheap once up; needs root.
set -euo pipefail

log() { echo "setup/remote-docker: $*" >&2; }

BED=/var/lib/berth-remote
TLS_ADDR=127.0.0.1:2386
SSH_PORT=2222
SSH_USER=berth-ssh
IMAGES=(berth-test/busybox:1 berth-test/debian:2)

if [ "$(id -u)" != 0 ]; then
	log "needs root"
	exit 1
fi

need() {
	local missing=()
	command -v openssl >/dev/null || missing+=(openssl)
	[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
	command -v ssh >/dev/null || missing+=(openssh-client)
	command -v socat >/dev/null || missing+=(socat)
	command -v nsenter >/dev/null || missing+=(util-linux)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}
need
mkdir -p "$BED/certs" "$BED/client" "$BED/ssh"
chmod 700 "$BED"

# Certificates: a CA, the daemon's (127.0.0.1 and localhost) and a
# client's, as docker's "protect the daemon socket" guide makes them.
certs() {
	local d=$BED/certs
	[ -s "$BED/client/key.pem" ] && [ -s "$d/server-cert.pem" ] && return
	log "generating TLS certificates"
	openssl genrsa -out "$d/ca-key.pem" 2048 2>/dev/null
	openssl req -new -x509 -days 3650 -key "$d/ca-key.pem" -sha256 -subj "/CN=berth test CA" -out "$d/ca.pem"
	openssl genrsa -out "$d/server-key.pem" 2048 2>/dev/null
	openssl req -new -key "$d/server-key.pem" -subj "/CN=localhost" -out "$d/server.csr"
	printf 'subjectAltName = IP:127.0.0.1,DNS:localhost\nextendedKeyUsage = serverAuth\n' >"$d/server.ext"
	openssl x509 -req -days 3650 -sha256 -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
		-CAcreateserial -out "$d/server-cert.pem" -extfile "$d/server.ext" 2>/dev/null
	openssl genrsa -out "$BED/client/key.pem" 2048 2>/dev/null
	openssl req -new -key "$BED/client/key.pem" -subj "/CN=client" -out "$d/client.csr"
	printf 'extendedKeyUsage = clientAuth\n' >"$d/client.ext"
	openssl x509 -req -days 3650 -sha256 -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
		-CAcreateserial -out "$BED/client/cert.pem" -extfile "$d/client.ext" 2>/dev/null
	cp "$d/ca.pem" "$BED/client/ca.pem"
	chmod 600 "$d"/*-key.pem "$BED/client/key.pem"
}
certs

remote() {
	DOCKER_HOST=tcp://$TLS_ADDR DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$BED/client docker "$@"
}

# The second dockerd runs in its own network namespace, berth-rd: with no
# bridge, dockerd deletes docker0 where it starts, and the host's must stay.
# It listens on the namespace's end of a veth pair (198.51.100.2, a
# documentation range), and socat relays 127.0.0.1:PORT on the host to it.
NS=berth-rd
NS_IP=198.51.100.2
ns_up() { [ -e /run/netns/$NS ] && ip netns exec $NS ip -4 addr show dev berth-rd1 2>/dev/null | grep "$NS_IP" >/dev/null; }
if ! ns_up; then
	log "making network namespace $NS"
	[ -e /run/netns/$NS ] || ip netns add $NS
	ip link del berth-rd0 2>/dev/null || true
	ip link add berth-rd0 type veth peer name berth-rd1
	ip link set berth-rd1 netns $NS
	ip addr add 198.51.100.1/30 dev berth-rd0
	ip link set berth-rd0 up
	ip netns exec $NS ip addr add "$NS_IP/30" dev berth-rd1
	ip netns exec $NS ip link set berth-rd1 up
	ip netns exec $NS ip link set lo up
fi
if ! remote info >/dev/null 2>&1; then
	pid=$(cat /run/berth-rd.pid 2>/dev/null || true)
	if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
		log "starting the second dockerd in netns $NS (log: /var/log/berth-remote-dockerd.log)"
		mkdir -p "$BED/data"
		d=$BED/certs
		# nsenter, not ip netns exec: that one remounts /sys, hiding cgroups.
		PATH=$PATH:/usr/sbin setsid nohup nsenter --net=/run/netns/$NS dockerd \
			--data-root "$BED/data" --exec-root /run/berth-rd --pidfile /run/berth-rd.pid \
			-H "tcp://$NS_IP:${TLS_ADDR#*:}" --tlsverify --tlscacert "$d/ca.pem" --tlscert "$d/server-cert.pem" --tlskey "$d/server-key.pem" \
			--bridge=none --iptables=false --ip-masq=false --ip-forward=false \
			>>/var/log/berth-remote-dockerd.log 2>&1 </dev/null &
	fi
	relay=$(cat /run/berth-rd-relay.pid 2>/dev/null || true)
	if [ -z "$relay" ] || ! kill -0 "$relay" 2>/dev/null; then
		log "relaying $TLS_ADDR to $NS_IP"
		setsid nohup socat "TCP-LISTEN:${TLS_ADDR#*:},bind=${TLS_ADDR%:*},fork,reuseaddr" "TCP:$NS_IP:${TLS_ADDR#*:}" \
			>>/var/log/berth-remote-relay.log 2>&1 </dev/null &
		echo $! >/run/berth-rd-relay.pid
	fi
	for _ in $(seq 1 60); do
		remote info >/dev/null 2>&1 && break
		sleep 0.5
	done
	if ! remote info >/dev/null 2>&1; then
		log "the second dockerd did not come up; see /var/log/berth-remote-dockerd.log"
		tail -20 /var/log/berth-remote-dockerd.log >&2 || true
		exit 1
	fi
fi

# The test images, from the first dockerd; skipped when already there.
for img in "${IMAGES[@]}"; do
	remote image inspect "$img" >/dev/null 2>&1 && continue
	if ! docker image inspect "$img" >/dev/null 2>&1; then
		log "$img is not on the first dockerd (testdata/images makes it); skipping"
		continue
	fi
	log "copying $img to the second dockerd"
	docker save "$img" | remote load -q >/dev/null
done

if ! id "$SSH_USER" >/dev/null 2>&1; then
	getent group docker >/dev/null || groupadd --system docker
	useradd --system --create-home --home-dir /var/lib/berth-ssh --shell /bin/sh --groups docker "$SSH_USER"
fi
# No password, but not locked: sshd without PAM refuses a locked account.
usermod -p '*' "$SSH_USER"

# sshd: its own config, host key and authorized key; loopback, key-only.
s=$BED/ssh
[ -s "$s/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C 'berth test host' -f "$s/host_ed25519"
[ -s "$s/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C 'berth test client' -f "$s/id_ed25519"
# A second host key, never served: known_hosts pins localhost to it.
[ -s "$s/wrong_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C 'berth test wrong host key' -f "$s/wrong_ed25519"
home=$(getent passwd "$SSH_USER" | cut -d: -f6)
install -d -m 700 -o "$SSH_USER" -g "$SSH_USER" "$home/.ssh"
install -m 600 -o "$SSH_USER" -g "$SSH_USER" "$s/id_ed25519.pub" "$home/.ssh/authorized_keys"
cat >"$s/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $s/host_ed25519
PidFile /run/berth-sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers $SSH_USER
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
CONF
mkdir -p /run/sshd /etc/ssh/ssh_config.d
cat >/etc/ssh/ssh_config.d/berth-test.conf <<CONF
# berth's remote-Docker test bed (testdata/setup/remote-docker.sh)
# One ssh connection carries them all (docker's docs advise it for ssh://
# hosts): the docker client dials once per request.
Host 127.0.0.1 localhost
	IdentityFile $s/id_ed25519
	ControlMaster auto
	ControlPath /run/berth-ssh-%C
	ControlPersist 300
CONF
kh=/etc/ssh/ssh_known_hosts
touch "$kh"
grep -v '^\[127\.0\.0\.1\]:'"$SSH_PORT"' \|^\[localhost\]:'"$SSH_PORT"' ' "$kh" >"$kh.new" || true
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$s/host_ed25519.pub")" >>"$kh.new"
echo "[localhost]:$SSH_PORT $(cut -d' ' -f1,2 "$s/wrong_ed25519.pub")" >>"$kh.new"
mv "$kh.new" "$kh"

sshd_up() { [ -s /run/berth-sshd.pid ] && kill -0 "$(cat /run/berth-sshd.pid)" 2>/dev/null; }
if ! sshd_up; then
	log "starting sshd on 127.0.0.1:$SSH_PORT"
	/usr/sbin/sshd -t -f "$s/sshd_config"
	/usr/sbin/sshd -f "$s/sshd_config" -E /var/log/berth-sshd.log
fi
if ! ssh -o BatchMode=yes -o ConnectTimeout=5 -p "$SSH_PORT" "$SSH_USER@127.0.0.1" docker version --format '{{.Server.Version}}' >/dev/null; then
	log "ssh $SSH_USER@127.0.0.1:$SSH_PORT can't reach docker; see /var/log/berth-sshd.log"
	exit 1
fi
log "up: tcp://$TLS_ADDR (DOCKER_CERT_PATH=$BED/client) and ssh://$SSH_USER@127.0.0.1:$SSH_PORT"
