"""Simulated sensor firmware over MQTT: physics, faults, scenarios and a load mode.

    from firmware_sim import Simulator

    async with Simulator("mqtt://127.0.0.1:1883", "pump-overheat", devices=2, seed=1) as sim:
        summary = await sim.run()
        sim.state("pump-0").temp_c

`run_simulation(...)` is the blocking form; `baton sim run` the command line.
"""

from firmware_sim.config import Scenario
from firmware_sim.device import DeviceState
from firmware_sim.errors import BrokerUnreachable, ScenarioError, SimError
from firmware_sim.scenario import list_scenarios, load_scenario
from firmware_sim.simulator import Simulator, run_simulation
from firmware_sim.summary import SimSummary

__all__ = [
    "BrokerUnreachable",
    "DeviceState",
    "Scenario",
    "ScenarioError",
    "SimError",
    "SimSummary",
    "Simulator",
    "list_scenarios",
    "load_scenario",
    "run_simulation",
]
