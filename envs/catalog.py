"""The built-in tasks, registered lazily (only ``"module:attr"`` strings; nothing is imported).

| task                       | env                                | steps | obs | act      |
|----------------------------|------------------------------------|-------|-----|----------|
| ``pendulum``               | Pendulum-v1                        | 200   | 3   | 1        |
| ``cartpole_swingup``       | PILCO/PETS swing-up (this package) | 200   | 4   | 1        |
| ``cartpole``               | CartPole-v1                        | 500   | 4   | 2 (disc) |
| ``cartpole_continuous``    | mbrl-lib's continuous CartPole     | 200   | 4   | 1        |
| ``acrobot``                | Acrobot-v1                         | 500   | 6   | 3 (disc) |
| ``inverted_pendulum``      | InvertedPendulum-v5                | 1000  | 4   | 1        |
| ``inverted_double_pendulum`` | InvertedDoublePendulum-v5        | 1000  | 9   | 1        |
| ``reacher``                | Reacher-v5                         | 50    | 10  | 2        |
| ``halfcheetah``            | HalfCheetah-v5 (+ x)               | 1000  | 18  | 6        |
| ``hopper``                 | Hopper-v5 (+ x)                    | 1000  | 12  | 3        |
| ``walker2d``               | Walker2d-v5 (+ x)                  | 1000  | 18  | 6        |
| ``ant``                    | Ant-v5, MBPO obs + torso x         | 1000  | 28  | 8        |
| ``humanoid``               | Humanoid-v5, MBPO obs + CoM x      | 1000  | 46  | 17       |

Every task has a reward and a termination function; see each module's docstring for the exact
observation layout and for where (if anywhere) the functions can differ from ``env.step``.
"""

from __future__ import annotations

import math

from envs import register
from envs.spec import TaskEntry


def _fns(module: str, *, dynamics: bool = False, linearize: bool = False) -> dict[str, str | None]:
    return {
        "reward_fn": f"{module}:reward_fn",
        "termination_fn": f"{module}:termination_fn",
        "dynamics": f"{module}:dynamics" if dynamics else None,
        "linearize": f"{module}:linearize" if linearize else None,
    }


# --- classic control --------------------------------------------------------------------------

register(
    TaskEntry(
        name="pendulum",
        make="envs.classic.pendulum:make_env",
        max_episode_steps=200,
        **_fns("envs.classic.pendulum", dynamics=True),
        equilibrium=((1.0, 0.0, 0.0), (0.0,)),
        saturating_cost="envs.classic.pendulum:SATURATING_COST",
        tags=("classic",),
    )
)
register(
    TaskEntry(
        name="cartpole_swingup",
        make="envs.classic.cartpole_swingup:make_env",
        max_episode_steps=200,
        **_fns("envs.classic.cartpole_swingup", dynamics=True),
        equilibrium=((0.0, 0.0, math.pi, 0.0), (0.0,)),
        angle_dims=(2,),
        saturating_cost="envs.classic.cartpole_swingup:SATURATING_COST",
        tags=("classic",),
    )
)
register(
    TaskEntry(
        name="cartpole",
        make="envs.classic.cartpole:make_env",
        max_episode_steps=500,
        **_fns("envs.classic.cartpole", dynamics=True),
        tags=("classic", "discrete"),
    )
)
register(
    TaskEntry(
        name="cartpole_continuous",
        make="envs.classic.cartpole_continuous:make_env",
        max_episode_steps=200,
        **_fns("envs.classic.cartpole_continuous", dynamics=True),
        equilibrium=((0.0, 0.0, 0.0, 0.0), (0.0,)),
        tags=("classic",),
    )
)
register(
    TaskEntry(
        name="acrobot",
        make="envs.classic.acrobot:make_env",
        max_episode_steps=500,
        **_fns("envs.classic.acrobot", dynamics=True),
        tags=("classic", "discrete"),
    )
)

# --- MuJoCo (Gymnasium v5) --------------------------------------------------------------------

register(
    TaskEntry(
        name="inverted_pendulum",
        make="envs.mujoco.inverted_pendulum:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.inverted_pendulum", linearize=True),
        # the pole capsule runs from (0, 0, 0) to (0.001, 0, 0.6): it balances at -atan(0.001/0.6)
        equilibrium=((0.0, -math.atan2(0.001, 0.6), 0.0, 0.0), (0.0,)),
        simulator=True,
        state_to_obs="envs.mujoco.inverted_pendulum:SIM_OBS",
        tags=("mujoco",),
    )
)
register(
    TaskEntry(
        name="inverted_double_pendulum",
        make="envs.mujoco.inverted_double_pendulum:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.inverted_double_pendulum"),
        simulator=True,
        state_to_obs="envs.mujoco.inverted_double_pendulum:SIM_OBS",
        tags=("mujoco",),
    )
)
register(
    TaskEntry(
        name="reacher",
        make="envs.mujoco.reacher:make_env",
        max_episode_steps=50,
        **_fns("envs.mujoco.reacher"),
        simulator=True,
        state_to_obs="envs.mujoco.reacher:SIM_OBS",
        tags=("mujoco",),
    )
)
register(
    TaskEntry(
        name="halfcheetah",
        make="envs.mujoco.half_cheetah:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.half_cheetah"),
        simulator=True,
        state_to_obs="envs.mujoco.half_cheetah:SIM_OBS",
        reward_only_dims=(0,),
        tags=("mujoco", "locomotion"),
    )
)
register(
    TaskEntry(
        name="hopper",
        make="envs.mujoco.hopper:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.hopper"),
        simulator=True,
        state_to_obs="envs.mujoco.hopper:SIM_OBS",
        reward_only_dims=(0,),
        tags=("mujoco", "locomotion"),
    )
)
register(
    TaskEntry(
        name="walker2d",
        make="envs.mujoco.walker2d:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.walker2d"),
        simulator=True,
        state_to_obs="envs.mujoco.walker2d:SIM_OBS",
        reward_only_dims=(0,),
        tags=("mujoco", "locomotion"),
    )
)
register(
    TaskEntry(
        name="ant",
        make="envs.mujoco.ant:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.ant"),
        simulator=True,
        state_to_obs="envs.mujoco.ant:SIM_OBS",
        reward_only_dims=(0,),
        tags=("mujoco", "locomotion"),
    )
)
register(
    TaskEntry(
        name="humanoid",
        make="envs.mujoco.humanoid:make_env",
        max_episode_steps=1000,
        **_fns("envs.mujoco.humanoid"),
        simulator=True,
        state_to_obs="envs.mujoco.humanoid:SIM_OBS",
        reward_only_dims=(0,),
        tags=("mujoco", "locomotion"),
    )
)
