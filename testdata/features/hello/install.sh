#!/bin/sh
set -e
msg=$GREETING
if [ "$LOUD" = true ]; then msg=$(echo "$msg" | tr a-z A-Z); fi
mkdir -p /usr/local/bin /usr/local/share
printf '#!/bin/sh\necho "%s"\n' "$msg" > /usr/local/bin/hello
chmod 755 /usr/local/bin/hello
echo "hello remote=$_REMOTE_USER home=$_REMOTE_USER_HOME container=$_CONTAINER_USER" > /usr/local/share/berth-hello-users
echo hello >> /usr/local/share/berth-order
