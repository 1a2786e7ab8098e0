"""Turning a scenario into devices: the profile mix, ids, clocks and fault assignments."""

from __future__ import annotations

import math

from firmware_sim.config import Profile, Scenario
from firmware_sim.device import Clock, SimDevice
from firmware_sim.faults import FaultPlan
from firmware_sim.sender import Sender
from firmware_sim.summary import Counters


def assign_profiles(profiles: list[Profile], devices: int) -> list[Profile]:
    """`devices` profiles in proportion to their weights (largest remainder), in blocks."""
    total = sum(p.weight for p in profiles)
    shares = [devices * p.weight / total for p in profiles]
    counts = [math.floor(share) for share in shares]
    by_remainder = sorted(range(len(profiles)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: devices - sum(counts)]:
        counts[i] += 1
    return [profile for profile, count in zip(profiles, counts, strict=True) for _ in range(count)]


def device_id(prefix: str, profile: Profile, index: int) -> str:
    return f"{prefix}{profile.name}-{index}"


def build_fleet(
    scenario: Scenario,
    *,
    devices: int,
    seed: int,
    clock: Clock,
    faults: FaultPlan,
    counters: Counters,
    sender: Sender,
    id_prefix: str = "",
) -> list[SimDevice]:
    """The run's devices, in index order; each sends through `sender` until a link
    claims it."""
    return [
        SimDevice(
            device_id(id_prefix, profile, index),
            index,
            profile,
            seed=seed,
            clock=clock,
            faults=faults.per_device[index],
            buffer=scenario.network.buffer,
            counters=counters,
            sender=sender,
        )
        for index, profile in enumerate(assign_profiles(scenario.profile, devices))
    ]
