"""What may leave a sandbox: the host firewall (``firewall``: addresses and CIDRs, the node boundary), the
node's transparent egress proxy for host names (``proxy``), and the reading of the host name a connection
names in its first bytes (``sni``)."""
