"""A real DNS server for moonport's resolver tests: dnslib's zone resolver
(installed from PyPI by scripts/setup) on 127.0.0.1, UDP and TCP on one port.

Usage: python3 server.py ZONE_FILE
Prints the port on the first line of standard output, then serves until
killed. Replies over 512 bytes are truncated on UDP (the TC bit), so the
client must retry over TCP, as real resolvers do.
"""
import sys
import time

from dnslib.server import DNSHandler, DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver

with open(sys.argv[1]) as zone:
    resolver = ZoneResolver(zone)
DNSHandler.udplen = 512
quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
# A free UDP port whose TCP twin is free too: retry while a TCP socket
# (some other test's connection) happens to hold the number.
for attempt in range(50):
    udp = DNSServer(resolver, port=0, address="127.0.0.1", logger=quiet)
    port = udp.server.server_address[1]
    try:
        tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=quiet)
        break
    except OSError:
        udp.server.server_close()
else:
    sys.exit("no port free for both UDP and TCP")
udp.start_thread()
tcp.start_thread()
print(port, flush=True)
while True:
    time.sleep(3600)
