"""The one way a service fetches a URL a tenant gave: only public addresses, bounded in size, time and
redirects.

A tenant's URL is aimed by whoever wrote it, so it must not reach this platform's own network: loopback,
private and link-local ranges (the cloud metadata address among them), or any other address that is not
globally routable. Every hop is checked after its name is resolved, and the connection goes to the
address that was checked, so a name that resolves differently on a second lookup gains nothing. Hosts
written as numbers (`0x7f000001`, `2130706433`) resolve like any name and are checked the same way.
Operators who keep model servers or images on a private network allow those networks by name
(`IMAGEGEN_ALLOWED_NETWORKS`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from . import tracing
from .config import ConfigError, Env

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(Exception):
    """The URL may not be fetched, or its answer is not acceptable; the message says why."""


@dataclass(frozen=True)
class OutboundPolicy:
    # Networks allowed although they are not public (a LAN model server, loopback in tests).
    allowed_networks: tuple[Network, ...] = ()
    # Whether public addresses may be reached at all (off: only the allowed networks, as a closed
    # network or a test wants).
    public: bool = True
    max_redirects: int = 3

    @classmethod
    def from_env(cls, env: Env) -> OutboundPolicy:
        return cls.parse(env.str("ALLOWED_NETWORKS"), env.bool("OUTBOUND_PUBLIC", True))

    def without_private(self) -> OutboundPolicy:
        """Public addresses only (where this one allows them): for webhooks, unless a deployment lets
        callbacks reach its allowed networks too."""
        return dataclasses.replace(self, allowed_networks=())

    @classmethod
    def parse(cls, networks: str, public: bool = True) -> OutboundPolicy:
        try:
            allowed = tuple(
                ipaddress.ip_network(n.strip(), strict=False) for n in networks.split(",") if n.strip()
            )
        except ValueError as exc:
            raise ConfigError(f"IMAGEGEN_ALLOWED_NETWORKS: {exc}") from None
        return cls(allowed_networks=allowed, public=public)

    def refusal(self, address: str) -> str | None:
        """Why the address may not be reached; None when it may."""
        ip = _ip(address)
        if any(ip in network for network in self.allowed_networks):
            return None
        if not ip.is_global or ip.is_multicast:
            return f"{ip} is not a public address"
        if not self.public:
            return f"{ip} is public, and this deployment reaches only its allowed networks"
        return None

    def is_private_allowed(self, address: str) -> bool:
        ip = _ip(address)
        return (not ip.is_global or ip.is_multicast) and any(ip in n for n in self.allowed_networks)

    def check_url(self, url: str) -> None:
        """Refuses a URL that is not http(s), carries credentials, or names a refused address as a
        number; a name is checked by the resolver, on the address it connects to."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefused(f"only http:// and https:// URLs are fetched; got {url[:100]!r}")
        if parts.username or parts.password:
            raise OutboundRefused("URLs with credentials in them are not fetched")
        address = numeric_address(parts.hostname)
        refusal = self.refusal(address) if address is not None else None
        if refusal is not None:
            raise OutboundRefused(f"{parts.hostname} is refused: {refusal}")


def guarded_session(policy: OutboundPolicy, limit: int = 64, **kwargs) -> aiohttp.ClientSession:
    """An aiohttp session that connects only where the policy allows, to the addresses it checked.
    Callers check each URL with `policy.check_url` first (a host written as a number skips the
    resolver) and follow no redirect they have not checked."""
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(policy), limit=limit, ttl_dns_cache=60)
    return aiohttp.ClientSession(connector=connector, trace_configs=tracing.aiohttp_trace_configs(), **kwargs)


class _GuardedResolver(AbstractResolver):
    def __init__(self, policy: OutboundPolicy):
        self.policy = policy
        self._resolver = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._resolver.resolve(host, port, family)
        allowed = [a for a in answers if self.policy.refusal(a["host"]) is None]
        if not allowed:
            why = self.policy.refusal(answers[0]["host"]) if answers else "it does not resolve"
            raise OSError(f"{host} is refused: {why}")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    data: bytes


class OutboundClient:
    """A pooled HTTP client for tenant-given URLs; open it inside the running loop."""

    def __init__(self, policy: OutboundPolicy):
        self.policy = policy
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = guarded_session(self.policy, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, url: str, *, max_bytes: int, timeout: float, accept: Iterable[str] = ()) -> Fetched:
        """The body of a GET, following at most the policy's redirects, each hop checked. Raises
        OutboundRefused with what went wrong: refused address, HTTP status, size, time."""
        headers = {"Accept": ", ".join(accept)} if accept else {}
        try:
            async with asyncio.timeout(timeout):
                for _ in range(self.policy.max_redirects + 1):
                    self.policy.check_url(url)
                    async with self.session.get(url, headers=headers, allow_redirects=False) as response:
                        if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                            url = urljoin(url, response.headers["Location"])
                            continue
                        if response.status != 200:
                            raise OutboundRefused(f"{_short(url)} answered HTTP {response.status}")
                        declared = response.content_length
                        if declared is not None and declared > max_bytes:
                            raise OutboundRefused(
                                f"{_short(url)} is {declared} bytes; the limit is {max_bytes}"
                            )
                        data = bytearray()
                        async for chunk in response.content.iter_chunked(64 * 1024):
                            data += chunk
                            if len(data) > max_bytes:
                                raise OutboundRefused(f"{_short(url)} is larger than {max_bytes} bytes")
                        return Fetched(url, response.headers.get("Content-Type", ""), bytes(data))
                raise OutboundRefused(f"{_short(url)} redirects more than {self.policy.max_redirects} times")
        except TimeoutError:
            raise OutboundRefused(f"{_short(url)} did not answer within {timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise OutboundRefused(f"{_short(url)} could not be reached: {exc.os_error}") from None
        except aiohttp.InvalidURL:
            raise OutboundRefused(f"{_short(url)} is not a valid URL") from None
        except aiohttp.ClientError as exc:
            raise OutboundRefused(f"{_short(url)} failed: {type(exc).__name__}") from None


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address as it is judged: an IPv4-mapped IPv6 address as the IPv4 one, no zone."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def numeric_address(host: str) -> str | None:
    """The address a host written as numbers stands for (`127.0.0.1`, `::1`, and the forms C's
    inet_aton reads: `0x7f000001`, `2130706433`, `127.1`); None for a name, which the resolver checks."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
