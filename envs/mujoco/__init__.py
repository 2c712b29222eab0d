"""Gymnasium MuJoCo v5 tasks with exact batched torch reward and termination functions.

Every env here is wrapped by :class:`envs.wrappers.SimStateInfo` (``info["sim_state"]``).
Importing this package imports neither MuJoCo nor Gymnasium's MuJoCo envs.

A MuJoCo quirk the reward functions account for: after ``mj_step`` the *positions* MuJoCo derived
from ``qpos`` (``xpos``, ``xipos``, ``site_xpos``) are those of the last RK4 stage of the last
substep, not of the final ``qpos``. Rewards that Gymnasium computes from such quantities (Ant's torso
``xpos``, Humanoid's centre of mass, InvertedDoublePendulum's tip site, Reacher's fingertip) are
therefore not exact functions of the final ``qpos``; see each module for how it is handled.
"""
