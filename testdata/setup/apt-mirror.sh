# Shared by berth's setup scripts; source it, don't run it.

# debian_mirror prints the URI and Signed-By of the apt source that serves
# bookworm, from deb822 .sources files or one-line .list files, so that the
# backports suite or a debootstrapped image comes from the same mirror as the
# rest of the machine. Callers set APT_ETC (normally /etc/apt).
debian_mirror() {
	local f
	for f in "$APT_ETC"/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush() {
				if (uri != "" && suites ~ /(^| )bookworm( |$)/ && !done) { print uri "\t" key; done = 1 }
				uri = ""; suites = ""; key = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { $1 = ""; suites = $0 " " }
			/^Signed-By:/ { key = $2 }
			END { flush() }
		' "$f"
	done
	for f in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		# deb [options] URI suite components...
		sed -e 's/#.*//' "$f" | awk '
			$1 == "deb" {
				i = 2; key = ""
				if ($i ~ /^\[/) {
					while (i <= NF) {
						if ($i ~ /^signed-by=/) { key = $i; sub(/^signed-by=/, "", key); sub(/\]$/, "", key) }
						if ($i ~ /\]$/) { i++; break }
						i++
					}
				}
				if ($(i + 1) == "bookworm") { print $i "\t" key; exit }
			}'
	done
}
