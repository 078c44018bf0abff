"""IP credential networks: what a network must be before an account may own it, and
how a client's address is read before it is matched against them.

Shared by the API, the CLI and SMTP so that a network one accepts is one the others
understand. Two rules keep an IP credential from turning the relay into an open one:

* **A minimum prefix length** (``MIN_PREFIX``): IPv4 /8, IPv6 /32. A /8 is the
  largest block ever assigned to one organisation and the largest private range
  (10.0.0.0/8), so any real network of application servers fits in one; anything
  shorter spans several organisations' addresses. A /32 is what a regional registry
  allocates to a whole ISP; a network of servers is a /48 to /64, and anything
  shorter than /32 is a slice of a region. ``0.0.0.0/0`` and ``::/0`` fall under this
  rule and are named in the error. The database repeats the rule as a CHECK.
* **No overlap between accounts** — enforced by PostgreSQL (``sql/0004``), not here.

IPv4-mapped IPv6 networks (``::ffff:0:0/96``) are refused: a client connecting to a
dual-stack listener from an IPv4 address is matched as that IPv4 address
(``client_address``), so such a network would never match; write it as IPv4.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The shortest prefix an IP credential may have, per IP version (see the module doc).
MIN_PREFIX = {4: 8, 6: 32}
#: IP credentials one account may have (API and CLI): a few networks of application
#: servers each; a longer list is better written as a wider network.
MAX_PER_ACCOUNT = 100
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


class InvalidNetwork(ValueError):
    """``str()`` says what is wrong with the network and what to write instead."""


def credential_network(text: str) -> Network:
    """The canonical network (host bits cleared) for an IP credential.

    ``10.1.2.3/24`` becomes ``10.1.2.0/24``; an address without a prefix is a /32
    (IPv4) or /128 (IPv6).

    Raises:
        InvalidNetwork: not a network, wider than ``MIN_PREFIX`` allows, or IPv4-mapped.
    """
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidNetwork(
            f"{text!r} is not an IP network; write one such as 192.0.2.0/24 or 2001:db8::/48"
        ) from None
    if network.prefixlen == 0:
        raise InvalidNetwork(
            f"{network} is every address: that would make this an open relay;"
            " name the networks of your application servers"
        )
    minimum = MIN_PREFIX[network.version]
    if network.prefixlen < minimum:
        raise InvalidNetwork(
            f"{network} is too wide: IPv{network.version} networks need a prefix of"
            f" /{minimum} or longer; name the networks of your application servers"
        )
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        raise InvalidNetwork(
            f"{network} is IPv4-mapped; IPv4 clients are matched by their IPv4 address,"
            " so write it as an IPv4 network"
        )
    return network


def client_address(peer: str) -> Address | None:
    """The address a client's IP credential is looked up by, or None if unusable.

    An IPv4-mapped IPv6 peer (``::ffff:192.0.2.1``, from a dual-stack listener) is its
    IPv4 address; a scope (``fe80::1%eth0``) is dropped.
    """
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
