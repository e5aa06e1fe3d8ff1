"""The SDP a mount is described with (RFC 4566, H.264 payload format per RFC 6184). Pure."""

from __future__ import annotations

import base64

from simulator.rtp import DEFAULT_PAYLOAD_TYPE, H264_CLOCK_RATE

TRACK_CONTROL = "trackID=0"


def h264_sdp(
    *,
    sps: bytes,
    pps: bytes,
    width: int,
    height: int,
    fps: float,
    session_id: int,
    host: str,
    payload_type: int = DEFAULT_PAYLOAD_TYPE,
) -> str:
    sprop = ",".join(base64.b64encode(nal).decode("ascii") for nal in (sps, pps))
    # profile-level-id is the three bytes after the SPS NAL header (RFC 6184 8.1).
    profile_level_id = sps[1:4].hex().upper()
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN IP4 {host}",
        "s=camcount simulator",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=now-",
        f"m=video 0 RTP/AVP {payload_type}",
        f"a=rtpmap:{payload_type} H264/{H264_CLOCK_RATE}",
        f"a=fmtp:{payload_type} packetization-mode=1;profile-level-id={profile_level_id};"
        f"sprop-parameter-sets={sprop}",
        f"a=framerate:{fps:g}",
        f"a=framesize:{payload_type} {width}-{height}",
        f"a=control:{TRACK_CONTROL}",
    ]
    return "\r\n".join(lines) + "\r\n"
