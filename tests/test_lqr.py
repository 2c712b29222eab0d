"""LQR: the Riccati solution on a known system, and balancing the MuJoCo inverted pendulum."""

from __future__ import annotations

import numpy as np

from algorithms.lqr import lqr_gain
from benchmark.driver import TrialSpec, run_trial


def test_double_integrator_gain_is_the_riccati_fixed_point():
    dt = 0.1
    a = np.array([[1.0, dt], [0.0, 1.0]])
    b = np.array([[0.5 * dt**2], [dt]])
    q, r = np.eye(2), np.array([[0.1]])
    k, p = lqr_gain(a, b, q, r)
    # P solves the DARE and K is its greedy gain
    residual = q + a.T @ p @ a - a.T @ p @ b @ np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a) - p
    assert np.abs(residual).max() < 1e-9
    # the value iteration from P=0 converges to the same P
    pv = np.zeros((2, 2))
    for _ in range(2000):
        pv = q + a.T @ pv @ a - a.T @ pv @ b @ np.linalg.solve(r + b.T @ pv @ b, b.T @ pv @ a)
    assert np.allclose(pv, p, atol=1e-8)
    assert np.all(np.abs(np.linalg.eigvals(a - b @ k)) < 1.0)


def test_lqr_holds_inverted_pendulum_for_the_full_episode():
    rows = run_trial(
        TrialSpec(
            "lqr", "inverted_pendulum", seed=0, total_steps=1000, eval_every=1000, eval_episodes=3
        )
    )
    returns = [r["value"] for r in rows if r["metric"] == "eval_return"]
    lengths = [r["value"] for r in rows if r["metric"] == "eval_length"]
    assert lengths == [1000.0, 1000.0] and returns == [1000.0, 1000.0]
    train = [r["value"] for r in rows if r["metric"] == "train_return"]
    assert train == [1000.0]
