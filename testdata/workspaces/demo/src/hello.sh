#!/bin/sh
# A script that reports its own location, the way compilers and test
# runners print paths.
echo "$0:4: hello from inside the container ($(uname -s) $(uname -m))"
