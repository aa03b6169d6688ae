#!/bin/sh
# A service that works out of the box on loopback: greets with a rules variable and
# echoes. Usage: sh echo-loopback.sh [bin-dir]; then:
#   bash -c 'exec 3<>/dev/tcp/127.0.0.1/7007; echo ping >&3; head -2 <&3'
BIN=${1:-target/release}
printf '127.0.0.1:allow,GREETING="hello local"\n:allow,GREETING="hello"\n' |
  "$BIN/tcprules" /tmp/echo.cdb /tmp/echo.tmp || exit 111
exec "$BIN/tcpserver" -v -c4 -C 2:"421 busy" -HRl0 -x /tmp/echo.cdb \
  127.0.0.1 7007 sh -c 'echo "$GREETING $TCPREMOTEIP"; exec cat'
