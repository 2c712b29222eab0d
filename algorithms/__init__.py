"""The algorithm registry: lazy ``"module:Class"`` entry points, checked before any trial runs."""

from __future__ import annotations

import os

from algorithms.api import AlgoConfig, Algorithm, ConfigError, RunContext, Transition
from envs.registry import Registry, UnknownNameError
from envs.spec import load

#: name -> "module:Class". Only whole, learning-tested plugins are registered here.
ALGORITHMS: Registry[str] = Registry("algorithm")
for _name, _ref in {
    "random": "algorithms.random_policy:RandomPolicy",
    "sac": "algorithms.sac:SACAgent",
    "rs": "algorithms.rs:RSAgent",
    "lqr": "algorithms.lqr:LQR",
    "cem": "algorithms.cem:CEMAgent",
    "mppi": "algorithms.mppi:MPPIAgent",
    "icem": "algorithms.icem:ICEMAgent",
    "pets": "algorithms.pets:PETS",
    "mbpo": "algorithms.mbpo:MBPOAgent",
    "dyna": "algorithms.dyna:DynaAgent",
    "mve": "algorithms.mve:MVEAgent",
    "steve": "algorithms.steve:STEVEAgent",
    "ddpg": "algorithms.ddpg:DDPGAgent",
    "dqn": "algorithms.dqn:DQNAgent",
    "muzero": "algorithms.muzero:MuZeroAgent",
    "tdmpc2": "algorithms.tdmpc2:TDMPC2Agent",
    "ilqg": "algorithms.ilqg:ILQG",
    "pilco": "algorithms.pilco:PILCO",
}.items():
    ALGORITHMS.add(_name, _ref)

# Out-of-tree plugins: MBRL_BENCH_PLUGINS="name=package.module:Class,other=pkg.mod:Cls".
# An environment variable (not a call) so that Ray workers, which inherit it, see them too.
for _item in filter(None, os.environ.get("MBRL_BENCH_PLUGINS", "").split(",")):
    _name, _, _ref = _item.strip().partition("=")
    ALGORITHMS.add(_name, _ref)


def get_algorithm(name: str) -> type[Algorithm]:
    """The plugin class registered under ``name`` (imports its module)."""
    cls = load(ALGORITHMS[name])
    if getattr(cls, "name", None) != name:
        raise RuntimeError(f"{ALGORITHMS[name]} declares name {getattr(cls, 'name', None)!r}")
    return cls


__all__ = [
    "ALGORITHMS",
    "AlgoConfig",
    "Algorithm",
    "ConfigError",
    "RunContext",
    "Transition",
    "UnknownNameError",
    "get_algorithm",
]
