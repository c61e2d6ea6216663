#!/bin/sh
set -e
mkdir -p /opt/envcap/bin /usr/local/share
printf '#!/bin/sh\necho "envcap %s"\n' "$FLAVOR" > /opt/envcap/bin/envcap
chmod 755 /opt/envcap/bin/envcap
echo envcap >> /usr/local/share/berth-order
