"""iLQG: the solver against finite-horizon LQR, the three derivative providers against finite
differences, the box-QP, config errors; slow: swing-ups and balancing through the driver."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from algorithms.api import Capability, ConfigError, RunContext, Transition, apply_overrides
from algorithms.ilqg import ILQG, ILQGConfig
from algorithms.models.ensemble import ProbabilisticEnsemble
from algorithms.models.ensemble_config import EnsembleConfig
from algorithms.planners.boxqp import box_qp
from algorithms.planners.derivatives import AutogradProblem, EnsembleProblem
from algorithms.planners.ilqg import ILQGOptions, backward_pass, ilqg
from algorithms.planners.mujoco_problem import MujocoProblem
from benchmark.driver import TrialSpec, resolve, run_trial
from envs import TASKS

D = torch.float64


# ------------------------------------------------------------------------------------------------
# the solver on a linear-quadratic problem


def _lq_problem(seed: int = 0):
    g = np.random.default_rng(seed)
    n, m, h = 3, 2, 25
    a = np.eye(n) + 0.1 * g.standard_normal((n, n))
    b = 0.5 * g.standard_normal((n, m))
    q = np.diag([1.0, 2.0, 0.5])
    r = np.diag([0.1, 0.3])
    qf = 5.0 * np.eye(n)
    x0 = np.array([1.0, -2.0, 0.5])
    return a, b, q, r, qf, x0, h


def _riccati(a, b, q, r, qf, h):
    """Finite-horizon LQR for ``sum x'Qx + u'Ru + x_H'Qf x_H``: gains ``K_t`` of ``u = -K_t x``."""
    p = qf
    gains = [None] * h
    for t in range(h - 1, -1, -1):
        k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p = q + a.T @ p @ (a - b @ k)
        gains[t] = k
    return np.stack(gains)


@pytest.mark.parametrize(
    ("limits", "reg"), [("boxqp", "state"), ("clamp", "state"), ("boxqp", "control")]
)
def test_ilqg_solves_lq_problem_like_riccati(limits: str, reg: str) -> None:
    a, b, q, r, qf, x0, h = _lq_problem()
    at, bt, qt, rt, qft = (torch.as_tensor(v) for v in (a, b, q, r, qf))

    def dynamics(x, u):
        return x @ at.T + u @ bt.T

    def reward(x, u, xn):
        return -((x @ qt) * x).sum(-1) - ((u @ rt) * u).sum(-1)

    def terminal(x):
        return ((x @ qft) * x).sum(-1)

    problem = AutogradProblem(dynamics, reward, 3, 2, terminal_cost=terminal)
    wide = torch.full((2,), 1e3, dtype=D)
    res = ilqg(
        problem,
        torch.as_tensor(x0),
        torch.zeros(h, 2, dtype=D),
        -wide,
        wide,
        ILQGOptions(max_iterations=100, control_limits=limits, regularization=reg, tol_rel=1e-12),
    )
    # mu = 1 at the start makes the first steps shorter than Newton's: several iterations, each
    # strictly decreasing the cost
    costs = np.asarray(res.costs)
    assert len(costs) >= 4, res
    assert np.all(np.diff(costs) < 0), costs
    # the optimum is the Riccati solution: u_t = -K_t x_t along its own trajectory
    k = _riccati(a, b, q, r, qf, h)
    x, us = x0.copy(), []
    for t in range(h):
        us.append(-k[t] @ x)
        x = a @ x + b @ us[-1]
    j_star = sum(
        float(xx @ q @ xx + uu @ r @ uu)
        for xx, uu in zip(res.states[:-1].numpy(), np.stack(us), strict=True)
    )
    np.testing.assert_allclose(res.controls.numpy(), np.stack(us), atol=1e-6)
    assert costs[-1] == pytest.approx(j_star + float(x @ qf @ x), rel=1e-9)
    # at the solution (mu = 0) the backward pass is the Riccati recursion: K_t = -K_lqr, k_t = 0
    bp = backward_pass(
        problem.derivatives(res.states, res.controls),
        res.controls,
        -wide,
        wide,
        0.0,
        ILQGOptions(control_limits=limits, regularization=reg),
    )
    assert bp is not None
    np.testing.assert_allclose(bp.gains.numpy(), -k, rtol=1e-9, atol=1e-9)
    assert float(bp.k.abs().max()) < 1e-6


def test_ilqg_respects_control_limits() -> None:
    a, b, q, r, _qf, x0, h = _lq_problem()
    at, bt, qt, rt = (torch.as_tensor(v) for v in (a, b, q, r))
    problem = AutogradProblem(
        lambda x, u: x @ at.T + u @ bt.T,
        lambda x, u, xn: -((x @ qt) * x).sum(-1) - ((u @ rt) * u).sum(-1),
        3,
        2,
    )
    lim = torch.full((2,), 0.3, dtype=D)
    res = ilqg(problem, torch.as_tensor(x0), torch.zeros(h, 2, dtype=D), -lim, lim)
    assert float(res.controls.abs().max()) <= 0.3 + 1e-12
    assert (res.controls.abs() == 0.3).any()  # the bound is active (the LQR controls exceed it)
    assert np.all(np.diff(res.costs) < 0)


# ------------------------------------------------------------------------------------------------
# box-QP


def _random_qp(seed: int, m: int = 4):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, m, generator=g, dtype=D)
    hess = a @ a.T + 0.5 * torch.eye(m, dtype=D)
    grad = 3.0 * torch.randn(m, generator=g, dtype=D)
    return hess, grad


@pytest.mark.parametrize("seed", range(5))
def test_box_qp_inactive_bounds_give_the_newton_point(seed: int) -> None:
    hess, grad = _random_qp(seed)
    big = torch.full((4,), 1e6, dtype=D)
    res = box_qp(hess, grad, -big, big)
    assert res.result >= 1 and bool(res.free.all())
    torch.testing.assert_close(res.x, -torch.linalg.solve(hess, grad), rtol=1e-9, atol=1e-9)
    # infinite bounds behave the same
    inf = torch.full((4,), math.inf, dtype=D)
    torch.testing.assert_close(box_qp(hess, grad, -inf, inf).x, res.x)


@pytest.mark.parametrize("seed", range(5))
def test_box_qp_active_bounds_satisfy_kkt(seed: int) -> None:
    hess, grad = _random_qp(seed)
    lower, upper = torch.full((4,), -0.2, dtype=D), torch.full((4,), 0.3, dtype=D)
    res = box_qp(hess, grad, lower, upper, x0=torch.zeros(4, dtype=D))
    x = res.x
    assert res.result >= 1
    assert bool(((x >= lower) & (x <= upper)).all())
    g = grad + hess @ x
    at_low, at_high = x == lower, x == upper
    inside = ~(at_low | at_high)
    assert bool((at_low | at_high).any())  # the unconstrained optimum is outside this box
    assert bool((g[inside].abs() < 1e-6).all())
    assert bool((g[at_low] >= -1e-9).all()) and bool((g[at_high] <= 1e-9).all())
    # the free set and its Cholesky factor are what the backward pass uses for the gains
    free = res.free
    assert torch.equal(free, inside)
    if bool(free.any()):
        torch.testing.assert_close(res.chol_free @ res.chol_free.T, hess[free][:, free])
    else:
        assert res.result == 6  # all dims clamped (boxQP.m's code)


@pytest.mark.parametrize("seed", range(5))
def test_box_qp_one_dimensional_shortcut_equals_the_iterations(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    hess = (torch.rand(1, 1, generator=g, dtype=D) + 0.1) * 3
    grad = torch.randn(1, generator=g, dtype=D) * 2
    lower, upper = torch.tensor([-0.4], dtype=D), torch.tensor([0.3], dtype=D)
    fast = box_qp(hess, grad, lower, upper)
    # the same problem as two dims with a decoupled, unconstrained second one
    h2 = torch.block_diag(hess, torch.ones(1, 1, dtype=D))
    slow = box_qp(
        h2,
        torch.cat([grad, grad.new_zeros(1)]),
        torch.cat([lower, lower.new_full((1,), -10.0)]),
        torch.cat([upper, upper.new_full((1,), 10.0)]),
    )
    torch.testing.assert_close(fast.x, slow.x[:1], rtol=1e-12, atol=1e-12)
    assert bool(fast.free[0]) == bool(slow.free[0])
    assert (fast.result == 6) == bool(~fast.free[0])


def test_box_qp_reports_an_indefinite_hessian() -> None:
    hess = torch.diag(torch.tensor([1.0, -1.0], dtype=D))
    big = torch.full((2,), 10.0, dtype=D)
    assert box_qp(hess, torch.ones(2, dtype=D), -big, big).result == -1
    assert box_qp(-hess[:1, :1], torch.ones(1, dtype=D), -big[:1], big[:1]).result == -1


# ------------------------------------------------------------------------------------------------
# derivative providers against finite differences


def _central_jacobian(fn, z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    cols = []
    for i in range(z.shape[-1]):
        dz = torch.zeros_like(z)
        dz[..., i] = eps
        cols.append((fn(z + dz) - fn(z - dz)) / (2 * eps))
    return torch.stack(cols, -1)


def _states(task: str, h: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if task == "pendulum":
        th = (torch.rand(h, generator=g, dtype=D) * 2 - 1) * math.pi
        thdot = (torch.rand(h, generator=g, dtype=D) * 2 - 1) * 3.0
        x = torch.stack([torch.cos(th), torch.sin(th), thdot], -1)
        u = (torch.rand(h, 1, generator=g, dtype=D) * 2 - 1) * 1.5
    else:
        x = torch.randn(h, 4, generator=g, dtype=D) * torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=D)
        u = (torch.rand(h, 1, generator=g, dtype=D) * 2 - 1) * 0.9
    return x, u


@pytest.mark.parametrize("name", ["pendulum", "cartpole_swingup"])
def test_autograd_provider_matches_finite_differences(name: str) -> None:
    task = TASKS[name].resolve()
    n, m, h = task.obs_dim, task.act_dim, 6
    x, u = _states(name, h + 1, seed=1)
    u = u[:h]
    f, r = task.dynamics, task.reward_fn
    assert f is not None and r is not None
    exact = AutogradProblem(f, r, n, m, cost_hessian="exact").derivatives(x, u)
    gn = AutogradProblem(f, r, n, m, cost_hessian="gauss_newton").derivatives(x, u)

    z = torch.cat([x[:-1], u], -1)
    fd = _central_jacobian(lambda zz: f(zz[..., :n], zz[..., n:]), z)  # [H, n, n+m]
    torch.testing.assert_close(exact.fx, fd[..., :n], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(exact.fu, fd[..., n:], rtol=1e-6, atol=1e-7)

    def step_cost(zz):
        xx, uu = zz[..., :n], zz[..., n:]
        return -r(xx, uu, f(xx, uu))

    grad_fd = _central_jacobian(step_cost, z)
    for d in (exact, gn):  # both give the exact gradient
        torch.testing.assert_close(d.cx[:-1], grad_fd[:, :n], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(d.cu, grad_fd[:, n:], rtol=1e-6, atol=1e-7)
        assert torch.equal(d.cx[-1], torch.zeros(n, dtype=D))  # no terminal cost
    # the exact Hessian is the derivative of the (autograd) gradient
    grad_fn = torch.func.vmap(torch.func.grad(lambda zz: step_cost(zz)))
    hess_fd = _central_jacobian(grad_fn, z, eps=1e-5)
    torch.testing.assert_close(exact.cxx[:-1], hess_fd[:, :n, :n], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(exact.cuu, hess_fd[:, n:, n:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(exact.cux, hess_fd[:, n:, :n], rtol=1e-5, atol=1e-6)


def _tiny_ensemble(task_name: str) -> ProbabilisticEnsemble:
    task = TASKS[task_name].resolve()
    model = ProbabilisticEnsemble.for_task(
        task, EnsembleConfig(members=3, elites=2, hidden=16, layers=2)
    )
    g = np.random.default_rng(0)
    obs = g.normal(size=(200, task.obs_dim)).astype(np.float32)
    act = g.uniform(-1, 1, size=(200, task.act_dim)).astype(np.float32)
    model.fit(obs, act, obs + 0.1 * np.tanh(obs), rng=g, max_epochs=2)
    return model


def test_ensemble_provider_matches_its_own_jacobian() -> None:
    task = TASKS["cartpole_swingup"].resolve()
    model = _tiny_ensemble("cartpole_swingup")
    assert task.reward_fn is not None
    problem = EnsembleProblem(model, task.reward_fn)
    x, u = _states("cartpole_swingup", 6, seed=2)
    u = u[:5]
    d = problem.derivatives(x, u)

    def mean_step(zz):  # the elites' mean, float32 like the network
        zz = zz.float()
        return model.step(zz[..., :4], zz[..., 4:], mode="mean", sample=False).next_obs.double()

    z = torch.cat([x[:-1], u], -1)
    # row by row with plain autograd: the batched torch.func path must agree to float32 precision
    jac = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda r: mean_step(r[None])[0], z[t])
            for t in range(5)
        ]
    )
    torch.testing.assert_close(d.fx, jac[..., :4], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d.fu, jac[..., 4:], rtol=1e-5, atol=1e-6)
    # and finite differences of the float32 network, at a step float32 resolves
    fd = _central_jacobian(mean_step, z, eps=1e-2)
    torch.testing.assert_close(d.fx, fd[..., :4], rtol=1e-2, atol=2e-3)
    assert not d.fx.requires_grad  # nothing tracks the weights
    with torch.no_grad():  # the planner steps with the elites' mean
        torch.testing.assert_close(
            problem.step(x, u[:1].expand(6, 1)), mean_step(torch.cat([x, u[:1].expand(6, 1)], -1))
        )


def _idp_trajectory(problem: MujocoProblem, h: int) -> tuple[torch.Tensor, torch.Tensor]:
    env = problem.task.make_env()
    _, info = env.reset(seed=3)
    g = np.random.default_rng(0)
    x0 = problem.initial_state(info["sim_state"])
    us = torch.as_tensor(g.uniform(-0.5, 0.5, size=(h, 1)))
    xs = [x0]
    for t in range(h):
        xs.append(problem.step(xs[-1][None], us[t][None])[0])
    env.close()
    return torch.stack(xs), us


def _mj_step_fd(model, frame_skip: int, x: np.ndarray, u: np.ndarray, eps: float = 1e-6):
    """Central differences of ``frame_skip`` ``mj_step``\\ s in ``(qpos, qvel)`` (hinges/slides)."""
    import mujoco

    data = mujoco.MjData(model)
    nq = model.nq

    def step(xx, uu):
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:], data.ctrl[:] = xx[:nq], xx[nq:], uu
        mujoco.mj_step(model, data, nstep=frame_skip)
        return np.concatenate([data.qpos, data.qvel])

    a = np.stack([(step(x + e, u) - step(x - e, u)) / (2 * eps) for e in np.eye(len(x)) * eps], -1)
    b = np.stack([(step(x, u + e) - step(x, u - e)) / (2 * eps) for e in np.eye(len(u)) * eps], -1)
    return a, b


@pytest.mark.parametrize("method", ["rollout_fd", "transition_fd"])
def test_mujoco_provider_matches_central_differences(method: str) -> None:
    import mujoco

    task = TASKS["inverted_double_pendulum"].resolve()
    problem = MujocoProblem(task, method=method)
    if method == "transition_fd":
        # MuJoCo refuses mjd_transitionFD on RK4 models: test that path on an Euler copy
        problem.model.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
    xs, us = _idp_trajectory(problem, 4)
    fx, fu = problem.transition_derivatives(xs[:-1].numpy(), us.numpy())
    qsl = slice(1, 1 + 2 * problem.nv)  # after the time entry: qpos, qvel
    for t in range(4):
        a, b = _mj_step_fd(problem.model, problem.frame_skip, xs[t, qsl].numpy(), us[t].numpy())
        np.testing.assert_allclose(fx[t].numpy(), a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fu[t].numpy(), b, rtol=1e-5, atol=1e-6)


def test_mujoco_rk4_refuses_transition_fd_so_auto_uses_rollouts() -> None:
    import mujoco

    problem = MujocoProblem(TASKS["inverted_double_pendulum"].resolve())
    assert not problem.uses_transition_fd
    nx = 2 * problem.nv
    with pytest.raises(Exception, match="RK4"):
        mujoco.mjd_transitionFD(
            problem.model,
            problem._data,
            1e-6,
            True,
            np.zeros((nx, nx)),
            np.zeros((nx, 1)),
            None,
            None,
        )


def _idp_obs_torch(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """InvertedDoublePendulum-v5's observation in torch (the constraint force left at 0)."""
    ang = q[..., 1:]
    return torch.cat(
        [q[..., :1], ang.sin(), ang.cos(), v.clamp(-10, 10), torch.zeros_like(q[..., :1])], -1
    )


def test_mujoco_cost_quadratization_matches_autograd_of_the_observation() -> None:
    task = TASKS["inverted_double_pendulum"].resolve()
    assert task.reward_fn is not None
    problem = MujocoProblem(task)
    xs, us = _idp_trajectory(problem, 3)
    xs[:, -1] = 0.0  # a zero stage value, as in the torch observation above
    gw, hw = problem.cost_derivatives(xs.numpy(), us.numpy())
    n = problem.state_dim

    def phi(w, x, u, xn):
        q0 = x[1:4] + w[:3]
        v0 = x[4:7] + w[3:6]
        q1 = xn[1:4] + w[7:10]
        v1 = xn[4:7] + w[10:13]
        return -task.reward_fn(_idp_obs_torch(q0, v0), u + w[6:7], _idp_obs_torch(q1, v1))

    for t in range(3):
        w0 = torch.zeros(2 * n + 1, dtype=D)
        args = (xs[t], us[t], xs[t + 1])
        g = torch.func.grad(phi)(w0, *args)
        hh = torch.func.hessian(phi)(w0, *args)
        torch.testing.assert_close(gw[t], g, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(hw[t], hh, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# config and capability errors


def test_discrete_action_tasks_are_refused_before_a_trial_runs() -> None:
    with pytest.raises(ConfigError, match="discrete actions"):
        resolve(TrialSpec("ilqg", "cartpole", seed=0, total_steps=10))


def test_true_model_needs_dynamics_or_simulator() -> None:
    pendulum = TASKS["pendulum"].resolve()
    bare = dataclasses.replace(
        pendulum,
        dynamics=None,
        linearize=None,
        capabilities=pendulum.capabilities - {Capability.DYNAMICS, Capability.LINEARIZATION},
    )
    with pytest.raises(ConfigError, match="oracle=false"):
        ILQG.check_task(bare, ILQGConfig(oracle=True))
    ILQG.check_task(bare, ILQGConfig(oracle=False))  # the learned model needs neither
    no_reward = dataclasses.replace(
        pendulum, reward_fn=None, capabilities=pendulum.capabilities - {Capability.REWARD_FN}
    )
    with pytest.raises(ConfigError, match="reward_fn"):
        ILQG.check_task(no_reward, ILQGConfig())


@pytest.mark.parametrize(
    "overrides",
    [
        {"horizon": 0},
        {"iterations": 0},
        {"initial_plans": (2.0,)},
        {"line_search_min": 0.0},
        {"oracle": False, "model.members": 3, "model.elites": 5},
        {"model": "learned"},  # the former switch, now ``oracle``
    ],
)
def test_bad_settings_are_refused_before_a_trial_runs(overrides: dict) -> None:
    with pytest.raises(ConfigError):
        resolve(TrialSpec("ilqg", "pendulum", seed=0, total_steps=10, overrides=overrides))


def test_overrides_are_type_checked() -> None:
    with pytest.raises(ConfigError):
        apply_overrides(ILQGConfig(), {"oracle": "learned"})
    with pytest.raises(ConfigError):
        apply_overrides(ILQGConfig(), {"control_limits": "projected"})
    cfg = apply_overrides(ILQGConfig(), {"oracle": False, "horizon": 20, "model.layers": 3})
    assert not cfg.oracle and cfg.horizon == 20 and cfg.model.layers == 3


# ------------------------------------------------------------------------------------------------
# the plugin


def _episode(algo: ILQG, env, seed: int, steps: int, *, explore: bool, observe: bool = False):
    obs, info = env.reset(seed=seed)
    algo.reset(explore=explore)
    actions = []
    for _ in range(steps):
        a = algo.act(obs, explore=explore, info=info)
        nxt, r, term, trunc, info = env.step(a)
        if observe:
            algo.observe(Transition(obs, a, float(r), nxt, term, trunc))
            algo.update()
        actions.append(a)
        obs = nxt
    return np.stack(actions)


def test_plugin_is_deterministic_and_keeps_one_warm_start_per_explore_value() -> None:
    task = TASKS["pendulum"].resolve()
    cfg = ILQGConfig(horizon=15, iterations=2, initial_iterations=5)
    env = task.make_env()
    runs = []
    for _ in range(2):
        algo = ILQG(task, cfg, RunContext.from_seed(0))
        runs.append(_episode(algo, env, seed=7, steps=8, explore=True))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.all(np.abs(runs[0]) <= 2.0)
    # an evaluation episode in between does not disturb the training episode's warm start
    algo = ILQG(task, cfg, RunContext.from_seed(0))
    obs, info = env.reset(seed=7)
    algo.reset(explore=True)
    first = algo.act(obs, explore=True, info=info)
    plan = algo.slots[True].plan
    _episode(algo, task.make_env(), seed=8, steps=3, explore=False)
    assert algo.slots[True].plan is plan
    np.testing.assert_array_equal(first, runs[0][0])


def test_learned_mode_fits_after_the_random_episode_and_checkpoints() -> None:
    task = TASKS["pendulum"].resolve()
    cfg = apply_overrides(
        ILQGConfig(),
        {
            "oracle": False,
            "initial_random_steps": 40,
            "model": {"members": 3, "elites": 2, "hidden": 32, "layers": 2, "max_epochs": 3},
            "horizon": 8,
            "iterations": 2,
            "initial_iterations": 3,
        },
    )
    env = task.make_env()
    algo = ILQG(task, cfg, RunContext.from_seed(1, total_steps=200))
    assert not algo.ready
    _episode(algo, env, seed=0, steps=45, explore=True, observe=True)
    assert algo.ready and algo.data is not None and algo.data.last_fit_step == 40
    state = algo.state_dict()
    clone = ILQG(task, cfg, RunContext.from_seed(5, total_steps=200))
    clone.load_state_dict(state)
    clone.ctx.load_generator_state(algo.ctx.generator_state())  # the driver's part of a resume
    obs, info = env.reset(seed=1)
    a1 = algo.act(obs, explore=False, info=info)
    a2 = clone.act(obs, explore=False, info=info)
    np.testing.assert_array_equal(a1, a2)


# ------------------------------------------------------------------------------------------------
# learning / acceptance (slow)


def _train_returns(task: str, seed: int, overrides: dict | None = None) -> list[float]:
    n = TASKS[task].max_episode_steps
    rows = run_trial(
        TrialSpec(
            "ilqg", task, seed=seed, total_steps=n, eval_episodes=0, overrides=overrides or {}
        )
    )
    return [r["value"] for r in rows if r["metric"] == "train_return"]


@pytest.mark.slow
@pytest.mark.ci
def test_ilqg_swings_up_pendulum_in_its_first_episode() -> None:
    # Seed 5 starts at th = 1.8 rad from upright, nearly at rest: the torque limit cannot hold it
    # there (3 u <= 6 < 15 sin th = 14.6 in the env's step), so reaching the top takes a swing.
    # Measured with the defaults, seeds 0-7: -334.8, -118.2, -118.4, -0.8, -121.1, -116.2,
    # -117.5, -0.4 (seed 0 starts hanging at the bottom, where CEM on the true model also gets
    # -335); zero torque scores -1287 from this start.
    returns = _train_returns("pendulum", seed=5)
    assert len(returns) == 1 and returns[0] >= -200, returns


@pytest.mark.slow
@pytest.mark.ci
def test_ilqg_swings_up_the_cartpole_in_its_first_episode() -> None:
    # Measured with the defaults: 185.0, 186.7, 181.6 (seeds 0-2) of at most 200; zero force
    # scores 0.8 from this start (the reward is exp(-d^2 / l^2) of the tip's distance d from the
    # top: ~0.02 per step at the bottom).
    returns = _train_returns("cartpole_swingup", seed=0)
    assert len(returns) == 1 and returns[0] >= 170, returns


@pytest.mark.slow
@pytest.mark.ci
def test_ilqg_balances_the_double_pendulum_with_mujoco_derivatives() -> None:
    task = TASKS["inverted_double_pendulum"].resolve()
    assert task.dynamics is None and task.has(Capability.SIMULATOR)  # planned on the simulator
    rows = run_trial(
        TrialSpec("ilqg", "inverted_double_pendulum", seed=0, total_steps=1000, eval_episodes=0)
    )
    lengths = [r["value"] for r in rows if r["metric"] == "train_length"]
    returns = [r["value"] for r in rows if r["metric"] == "train_return"]
    # 1000 steps without falling; upright the reward is 10 - (1.2 - 2)^2 = 9.36 per step at most
    # (measured 9359.6: tip at full height, cart near the middle)
    assert lengths == [1000.0], lengths
    assert returns[0] >= 9300, returns
