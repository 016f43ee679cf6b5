"""The kernel's routing netlink (rtnetlink), spoken directly: the few requests a sandbox's network needs
(a veth pair, addresses, links up, routes, and their removal), each acknowledged or raised as the
``OSError`` the kernel answered. No program is started, and nothing but the standard library is used.

A socket talks to the network namespace it was made in, whichever thread uses it later.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_IFNAME, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_GATEWAY = 1, 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE = 254, 3, 0
RTN_UNICAST, RTN_UNREACHABLE = 1, 7
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_LINK = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ADDRESS = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
# rtmsg: family, destination and source lengths, tos, table, protocol, scope, type, flags
_ROUTE = struct.Struct("=BBBBBBBBI")
ANSWER_MAX = 1 << 16
TIMEOUT_S = 10.0


def _attribute(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + bytes(-length % 4)


def _name(kind: int, name: str) -> bytes:
    return _attribute(kind, name.encode() + b"\0")


def _route(kind: int, destination_length: int) -> bytes:
    """An IPv4 route of the main table, as ``ip route`` makes it."""
    return _ROUTE.pack(
        socket.AF_INET, destination_length, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, kind, 0
    )


class Netlink:
    """One rtnetlink socket of the calling thread's network namespace."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self._socket.settimeout(TIMEOUT_S)
        self._socket.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> bytes:
        """Send one request; the answer's payload (none for an acknowledgement), or the kernel's error."""
        self._sequence += 1
        flags |= NLM_F_REQUEST | NLM_F_ACK
        self._socket.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, self._sequence, 0) + body)
        answer = b""
        while True:
            data = self._socket.recv(ANSWER_MAX)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, reply, _, sequence, _ = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError(f"rtnetlink answered a malformed message ({length} bytes)")
                payload = data[offset + _HEADER.size : offset + length]
                offset += (length + 3) & ~3
                if sequence != self._sequence:
                    continue
                if reply != NLMSG_ERROR:
                    answer = payload
                    continue
                (error,) = struct.unpack_from("=i", payload)
                if error:
                    raise OSError(-error, os.strerror(-error))
                return answer

    def add_veth(self, name: str, peer: str, peer_netns: int) -> None:
        """The veth pair ``name`` (here) and ``peer`` (in the network namespace of the descriptor
        ``peer_netns``); ``EEXIST`` if either name is taken."""
        peer_info = _LINK.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, peer)
        peer_info += _attribute(IFLA_NET_NS_FD, struct.pack("=I", peer_netns))
        info = _name(IFLA_INFO_KIND, "veth") + _attribute(
            IFLA_INFO_DATA, _attribute(VETH_INFO_PEER, peer_info)
        )
        body = _LINK.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name) + _attribute(IFLA_LINKINFO, info)
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def index(self, name: str) -> int:
        """The index of the link ``name``."""
        answer = self._request(RTM_GETLINK, 0, _LINK.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name))
        return _LINK.unpack_from(answer)[2]

    def up(self, name: str) -> None:
        body = _LINK.pack(0, 0, 0, IFF_UP, IFF_UP) + _name(IFLA_IFNAME, name)
        self._request(RTM_NEWLINK, 0, body)

    def delete_link(self, name: str) -> None:
        """Remove the link ``name`` (a veth takes its peer with it); one already gone is fine."""
        try:
            self._request(RTM_DELLINK, 0, _LINK.pack(0, 0, 0, 0, 0) + _name(IFLA_IFNAME, name))
        except OSError as err:
            if err.errno != errno.ENODEV:
                raise

    def set_address(self, name: str, address: str, prefix: int) -> None:
        """Give the link ``name`` the IPv4 ``address``/``prefix``, replacing the same one if it has it."""
        packed = ipaddress.IPv4Address(address).packed
        body = _ADDRESS.pack(socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, self.index(name))
        body += _attribute(IFA_LOCAL, packed) + _attribute(IFA_ADDRESS, packed)
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body)

    def set_default_route(self, gateway: str) -> None:
        """The IPv4 default route via ``gateway``, replacing any other."""
        body = _route(RTN_UNICAST, 0) + _attribute(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)

    def set_unreachable(self, network: ipaddress.IPv4Network, present: bool) -> None:
        """Add (or with ``present`` false, remove) the route of type ``unreachable`` for ``network``; one
        already gone is fine to remove."""
        destination = _attribute(RTA_DST, network.network_address.packed)
        body = _route(RTN_UNREACHABLE, network.prefixlen) + destination
        if present:
            self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)
            return
        try:
            self._request(RTM_DELROUTE, 0, body)
        except OSError as err:
            if err.errno != errno.ESRCH:
                raise
