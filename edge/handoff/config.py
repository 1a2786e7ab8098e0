"""`[handoff]` of edge.toml: the gateway's side of the handoff protocol.

[handoff]
enabled = true              # the daemon hosts agent sessions once the hub answers
lease_ttl_s = 10.0          # at most the hub's leases bucket max_age (LEASE_TTL_S)
hot_c = 80.0                # hand sessions to the cloud at this SoC temperature
cool_c = 70.0               # ... and take them back below this one
low_battery_pct = 20.0
ok_battery_pct = 35.0
dwell_s = 30.0              # no move back within this long of the last one
poll_s = 5.0                # how often temperature, battery and the uplink's state are read
thermal_zone = "/sys/class/thermal/thermal_zone0/temp"
battery = ""                # e.g. /sys/class/power_supply/BAT0/capacity; "" = mains
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from shared.config import Section
from shared.streams import LEASE_TTL_S

# `edge.config` reads this section at every daemon start; the protocol it configures
# (`shared.session`, ~0.2 s of imports) is imported when the daemon attaches, after ready.
if TYPE_CHECKING:
    from shared.session import SessionSettings
    from shared.session.policy import PolicyConfig


class HandoffConfig(Section):
    enabled: bool = Field(
        default=True, description="host agent sessions in the daemon and take part in handoff"
    )
    lease_ttl_s: float = Field(
        default=LEASE_TTL_S, gt=0, le=LEASE_TTL_S, description="session lease TTL, seconds"
    )
    rtc: bool = Field(default=True, description="follow cloud-owned sessions over WebRTC")
    hot_c: float = Field(default=80.0, description="hand sessions to the cloud at this SoC C")
    cool_c: float = Field(default=70.0, description="take them back below this SoC C")
    low_battery_pct: float = Field(default=20.0, ge=0, le=100)
    ok_battery_pct: float = Field(default=35.0, ge=0, le=100)
    dwell_s: float = Field(default=30.0, ge=0, description="no move back within this long")
    poll_s: float = Field(
        default=5.0, gt=0, description="device state (temperature, battery, uplink) read interval"
    )
    thermal_zone: Path | None = Field(
        default=Path("/sys/class/thermal/thermal_zone0/temp"),
        description="millidegrees C; missing file = unknown temperature",
    )
    battery: Path | None = Field(default=None, description="a capacity file, percent")

    def settings(self) -> SessionSettings:
        from shared.session import SessionSettings

        return SessionSettings(ttl_s=self.lease_ttl_s, rtc=self.rtc)

    def policy(self) -> PolicyConfig:
        from shared.session.policy import PolicyConfig

        return PolicyConfig(
            hot_c=self.hot_c, cool_c=self.cool_c, low_battery_pct=self.low_battery_pct,
            ok_battery_pct=self.ok_battery_pct, dwell_s=self.dwell_s,
        )  # fmt: skip
