"""aiortc set up the way golive needs it, for WHIP ingest and WHEP playback (webrtc).

aiortc's defaults suit a demo, not a server: it asks a public Google STUN server
for a reflexive candidate, and aioice gathers on every interface but loopback.
golive contacts no outside host unless ICE servers are configured, gathers host
candidates only on the configured addresses (tests use 127.0.0.1), and can
advertise a public address for a server behind 1:1 NAT.

Choosing the gathering addresses needs one aioice internal: `install_host_address_hook`
replaces it after `check_aioice` has verified its shape, once, when the composition
root starts; nothing is patched at import.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import ipaddress
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

TESTED_WITH = "aioice 0.13"
# Kept in step with the pin in pyproject.toml.

# The host addresses the current task gathers on; None means aioice's own choice.
_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "golive_webrtc_host_addresses", default=None
)
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


class IncompatibleAioice(RuntimeError):
    """The installed aioice lacks the internal the host-address hook replaces."""


def check_aioice(module: ModuleType = aioice.ice) -> None:
    """Raise `IncompatibleAioice` unless `module` gathers through a replaceable function.

    The hook works because `Connection.gather_candidates` looks the module function
    `get_host_addresses(use_ipv4, use_ipv6)` up when it runs.
    """
    function = getattr(module, "get_host_addresses", None)
    gather = getattr(getattr(module, "Connection", None), "gather_candidates", None)
    code = getattr(gather, "__code__", None)
    if (
        not inspect.isfunction(function)
        or list(inspect.signature(function).parameters) != ["use_ipv4", "use_ipv6"]
        or code is None
        or "get_host_addresses" not in code.co_names
    ):
        installed = getattr(aioice, "__version__", "unknown")
        raise IncompatibleAioice(
            f"aioice {installed} is not compatible with golive's ICE adapter: "
            f"{getattr(module, '__name__', module)!s}.get_host_addresses(use_ipv4, use_ipv6) "
            "is gone or no longer used by Connection.gather_candidates. golive was tested "
            f"with {TESTED_WITH}; install the versions in requirements.lock (`make run` does)"
        )


def install_host_address_hook() -> None:
    """Let `gather_on` choose the addresses aioice gathers host candidates on.

    aioice has no option for the interfaces it gathers on, and leaves loopback out.
    This replaces its module function with a wrapper that consults a context
    variable, so each peer connection chooses without touching any other one; with
    no choice made it calls aioice's own. The composition root calls it once at
    start (a second call changes nothing); raises `IncompatibleAioice` first when
    the internals differ from the tested version.
    """
    global _original_get_host_addresses
    module = aioice.ice
    if getattr(module, "get_host_addresses", None) is _get_host_addresses:
        return
    check_aioice(module)
    # getattr/setattr: the stubs-less module is typed as a plain ModuleType.
    _original_get_host_addresses = getattr(module, "get_host_addresses")  # noqa: B009
    setattr(module, "get_host_addresses", _get_host_addresses)  # noqa: B010


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _host_addresses.get()
    if chosen is None:
        assert _original_get_host_addresses is not None
        return list(_original_get_host_addresses(use_ipv4, use_ipv6))
    result = []
    for address in chosen:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            result.append(address)
    return result


@contextlib.contextmanager
def gather_on(addresses: Sequence[str]) -> Iterator[None]:
    """Within this block, ICE gathering (setLocalDescription) uses only `addresses`.

    An empty sequence keeps aioice's default: every non-loopback interface. Tasks
    created inside the block (aiortc gathers in one per transport) inherit it.
    Raises RuntimeError before `install_host_address_hook`: the choice would
    otherwise be ignored without a word.
    """
    if aioice.ice.get_host_addresses is not _get_host_addresses:
        raise RuntimeError(
            "golive.webrtc.ice.install_host_address_hook() has not run "
            "(the composition root runs it at start)"
        )
    token = _host_addresses.set(tuple(addresses) if addresses else None)
    try:
        yield
    finally:
        _host_addresses.reset(token)


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server handed to aiortc and advertised to clients."""

    url: str
    username: str | None = None
    credential: str | None = None

    def link_header(self) -> str:
        """The RFC 9725 section 4.6 `Link` value for this server."""
        value = f'<{self.url}>; rel="ice-server"'
        if self.username is not None and self.credential is not None:
            value += (
                f'; username="{_quoted(self.username)}"; credential="{_quoted(self.credential)}"'
                '; credential-type="password"'
            )
        return value


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class WebRtcOptions:
    """Node-wide WebRTC settings shared by WHIP and WHEP."""

    ice_servers: tuple[IceServer, ...] = ()
    host_addresses: tuple[str, ...] = ()
    public_address: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> WebRtcOptions:
        username = settings.webrtc_ice_username or None
        secret = settings.webrtc_ice_credential
        credential = secret.get_secret_value() if secret is not None else None
        servers = []
        for url in settings.webrtc_ice_servers:
            if url.startswith(("turn:", "turns:")):
                servers.append(IceServer(url, username, credential))
            else:
                servers.append(IceServer(url))
        return cls(
            ice_servers=tuple(servers),
            host_addresses=tuple(settings.webrtc_host_addresses),
            public_address=settings.webrtc_public_address,
        )

    def configuration(self) -> RTCConfiguration:
        # An explicit empty list matters: None makes aiortc use a public STUN server.
        return RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s.url, username=s.username, credential=s.credential)
                for s in self.ice_servers
            ]
        )

    def browser_ice_servers(self) -> list[dict[str, str]]:
        """The ICE servers as RTCIceServer dictionaries for a browser's RTCPeerConnection.

        TURN credentials are included: WHIP and WHEP answers already advertise them to any
        client in `Link` headers, and a non-trickle browser needs them before its offer.
        """
        servers = []
        for s in self.ice_servers:
            server = {"urls": s.url}
            if s.username is not None and s.credential is not None:
                server |= {"username": s.username, "credential": s.credential}
            servers.append(server)
        return servers

    def link_headers(self) -> list[str]:
        return [server.link_header() for server in self.ice_servers]


_CANDIDATE = re.compile(
    r"^a=candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ host(.*)$", re.IGNORECASE
)


def advertise_public_address(sdp: str, public_address: str) -> str:
    """Add a host candidate with `public_address` next to each host candidate (1:1 NAT).

    The extra candidate keeps the port of the one it copies and a slightly lower
    priority, so a client on the same network still prefers the private address.
    """
    if not public_address:
        return sdp
    out: list[str] = []
    for line in sdp.splitlines():
        out.append(line)
        match = _CANDIDATE.match(line)
        if match is None or match.group(5) == public_address:
            continue
        foundation, component, transport, priority, _address, port, rest = match.groups()
        out.append(
            f"a=candidate:{foundation}p {component} {transport} {max(0, int(priority) - 1)} "
            f"{public_address} {port} typ host{rest}"
        )
    return "\r\n".join(out) + "\r\n"


# A multicast DNS name as browsers put in host candidates to hide the viewer's address
# (draft-ietf-mmusic-mdns-ice-candidates: a UUID under .local).
_MDNS_NAME = re.compile(r"^[a-z0-9-]{1,63}\.local\.?$", re.IGNORECASE)


def is_mdns_name(host: str) -> bool:
    """True for a `.local` name, which only multicast DNS on the host's own link resolves."""
    return _MDNS_NAME.match(host) is not None


def without_mdns_candidates(sdp: str) -> str:
    """`sdp` without the candidates whose address is an mDNS name (before aiortc sees it).

    golive does not resolve them (what pion calls `MulticastDNSModeDisabled`). A
    `.local` name resolves only on the server's own link, so for peers on other
    networks aioice would hold the answer for its one-second query timeout and then
    drop the candidate anyway. The peer still connects: its checks reach golive's own
    candidates and become peer-reflexive candidates (RFC 8445 section 7.3.1.3), which
    is how browsers reach servers. An `a=end-of-candidates` goes too when a candidate
    was dropped (an offer made after gathering may carry one), so that golive waits
    for those checks instead of failing at once with no candidate pairs.

    Resolving also goes through aioice's per-thread mDNS state, whose asyncio.Lock
    binds to the first event loop that ever waits on it (two mDNS candidates resolved
    at once, as in every Chromium offer): in any later event loop of the same thread
    (a second node, a node restarted in the same process) such an offer failed with
    "Lock ... is bound to a different event loop".
    """
    lines = sdp.splitlines()
    kept = [line for line in lines if not _is_mdns_candidate_line(line)]
    if len(kept) == len(lines):
        return sdp
    # "These were all" is no longer true of what is left, and aioice fails a check list
    # that is empty at end-of-candidates at once, before any check arrives.
    kept = [line for line in kept if line.strip().lower() != "a=end-of-candidates"]
    return "".join(f"{line}\r\n" for line in kept)


def _is_mdns_candidate_line(line: str) -> bool:
    if not line.lower().startswith("a=candidate:"):
        return False
    fields = line.split()
    return len(fields) > 4 and is_mdns_name(fields[4])
