"""WebRTC for the live stream: one `RTCPeerConnection` and one data channel per follower,
signaled over NATS.

    follower (edge, browser)                       owner (cloud replica)
    createDataChannel + createOffer  ── request rtc.<session>.<owner side> ──▶  accept():
                                     ◀── reply: answer SDP ───────────────────  createAnswer
    ICE / DTLS / SCTP: the data channel opens  ──────────────────────────────▶  "datachannel"

aiortc gathers every ICE candidate before it returns a local description, so one
offer/answer exchange is the whole signaling (no trickle ICE). There is no STUN server
to reach, so `iceServers=[]` (aiortc would otherwise try Google's): host candidates only.
A peer connection left open keeps aiortc's tasks running, so `RtcPeer.aclose()` awaits
`pc.close()` and every path that made one ends there.

aiortc is imported inside the functions that need it: a daemon that never streams does
not pay for its import.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from nats.aio.client import Client

from shared import subjects
from shared.compat import timeout
from shared.session.errors import ChannelError

if TYPE_CHECKING:
    from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

log = logging.getLogger(__name__)

CHANNEL_LABEL: Final = "baton-events"
DIAL_TIMEOUT_S: Final = 5.0
Format = Literal["msgpack", "json"]


@dataclass(frozen=True, slots=True)
class Offer:
    """What a follower sends: its SDP, the last seq it has, the frame format it reads."""

    sdp: str
    after: int = 0
    fmt: Format = "msgpack"

    def encode(self) -> bytes:
        return json.dumps(
            {"type": "offer", "sdp": self.sdp, "after": self.after, "fmt": self.fmt}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Offer:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("type") != "offer":
            raise ValueError("not an SDP offer")
        fmt = raw.get("fmt", "msgpack")
        after = raw.get("after", 0)
        if fmt not in ("msgpack", "json") or type(after) is not int or after < 0:
            raise ValueError("bad fmt or after")
        return cls(str(raw["sdp"]), after, fmt)


def rtc_configuration() -> RTCConfiguration:
    from aiortc import RTCConfiguration

    return RTCConfiguration(iceServers=[])


class RtcPeer:
    """A peer connection and its data channel; `closed` is set when either ends."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.channel: RTCDataChannel | None = None
        self.closed = asyncio.Event()
        self._close: asyncio.Future[None] | None = None

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.closed.set()

    def attach(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("close", self.closed.set)

    def on_message(self, handler: Callable[[bytes | str], None]) -> None:
        if self.channel is not None:
            self.channel.on("message", handler)

    def send(self, data: bytes | str) -> bool:
        """Send if the channel is open; False when it is not (the caller falls back)."""
        channel = self.channel
        if channel is None or channel.readyState != "open" or self.closed.is_set():
            return False
        channel.send(data)
        return True

    async def aclose(self) -> None:
        """Close the connection and wait for aiortc's tasks to end. Safe twice. A caller
        cancelled meanwhile does not cut the close short (it is shielded): a half-closed
        peer connection would leave aiortc's ICE and SCTP tasks running."""
        self.closed.set()
        if self._close is None:
            self._close = asyncio.ensure_future(self.pc.close())
        await asyncio.shield(self._close)


async def dial(
    nc: Client,
    session: str,
    side: str,
    *,
    on_message: Callable[[bytes | str], None],
    after: int = 0,
    wait_s: float = DIAL_TIMEOUT_S,
) -> RtcPeer:
    """Open a channel to the owner of `session` (on `side`). Raises `ChannelError`.
    `on_message` is attached before the channel opens: the owner speaks first."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    peer = RtcPeer(RTCPeerConnection(rtc_configuration()))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    try:
        async with timeout(wait_s):
            channel = peer.pc.createDataChannel(CHANNEL_LABEL, ordered=True)
            channel.on("message", on_message)
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await peer.pc.setLocalDescription(await peer.pc.createOffer())
            offer = Offer(peer.pc.localDescription.sdp, after)
            left = max(0.01, deadline - loop.time())  # nc.request's own default is 0.5 s
            reply = await nc.request(subjects.rtc_signal(session, side), offer.encode(), left)
            answer = _answer(reply.data)
            await peer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await opened.wait()
            peer.attach(channel)
    except asyncio.CancelledError:
        await peer.aclose()
        raise
    except Exception as exc:  # SDP refused, no answer, ICE or DTLS failed, timed out
        await peer.aclose()
        raise ChannelError(f"no channel to {side} for {session}: {exc!r}") from exc
    return peer


def _answer(data: bytes) -> str:
    try:
        raw: Any = json.loads(data)
    except ValueError as exc:
        raise ChannelError("the signaling reply is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("type") != "answer":
        raise ChannelError(f"refused: {raw.get('error') if isinstance(raw, dict) else raw!r}")
    return str(raw["sdp"])


async def accept(offer: Offer) -> tuple[str, RtcPeer, asyncio.Future[RtcPeer]]:
    """Answer a follower's offer: the answer SDP, the peer, and a future resolved when
    its data channel arrives. The caller owns the peer (close it on every path)."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    peer = RtcPeer(RTCPeerConnection(rtc_configuration()))
    arrived: asyncio.Future[RtcPeer] = asyncio.get_running_loop().create_future()

    @peer.pc.on("datachannel")
    def _channel(channel: RTCDataChannel) -> None:
        peer.attach(channel)
        if not arrived.done():
            arrived.set_result(peer)

    try:
        await peer.pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    except BaseException:
        await peer.aclose()
        raise
    return peer.pc.localDescription.sdp, peer, arrived


def answer_reply(sdp: str) -> bytes:
    return json.dumps({"type": "answer", "sdp": sdp}).encode()


def refusal(reason: str) -> bytes:
    return json.dumps({"type": "error", "error": reason}).encode()
