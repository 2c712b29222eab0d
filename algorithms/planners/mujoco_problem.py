"""iLQG's derivative provider (b): the MuJoCo simulator of a ``Capability.SIMULATOR`` task
(:class:`MujocoProblem`, a :class:`~algorithms.planners.derivatives.Problem`). Kept apart from the
torch providers so that importing the solver never imports the simulator.

States are ``mjSTATE_FULLPHYSICS`` vectors (plus the task's "stage" values, see
:mod:`envs.simulate`); ``f_x, f_u`` live in MuJoCo's tangent space ``(dqpos [nv], dqvel [nv], dact
[na])``. They come from ``mujoco.mjd_transitionFD`` chained over the env step's ``frame_skip``
physics steps when the model's integrator allows it; MuJoCo refuses ``mjd_transitionFD`` on RK4
models (every SIMULATOR task but HalfCheetah), where they are central differences of the whole env
step in the same tangent coordinates, all ``2 (n + m)`` perturbations of all ``H`` steps in one
batched ``mujoco.rollout`` call. The cost ``-reward(obs(x), u, obs(x'))`` is quadratized in two
parts chained exactly: the torch ``reward_fn`` by autograd in ``(obs, u, obs')`` (one ``vmap``
call), and the task's own numpy ``StateObservation`` by central first and second differences in the
tangent coordinates (one vectorized evaluation of a fixed stencil for all states); the result is
then chained through ``[I; f_x f_u]`` (:func:`~algorithms.planners.derivatives.chain_cost`).
Differences of the observation map rather than a torch port of it: they work unchanged for every
SIMULATOR task and cannot drift from the observation the env reports (the contract tests check
``StateObservation`` against it); autograd rather than differences of the reward: rewards with step
functions (InvertedDoublePendulum's alive bonus) would show differences of 10 / eps there. Stage
values (quantities MuJoCo derives inside ``mj_step``) are held at their nominal values: exact for
InvertedDoublePendulum, whose reward does not read its stage value.

Shapes: ``H`` horizon, ``S`` stored state size, ``n = 2 nv + na`` tangent state size, ``m``
action size, ``B`` rows. Float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch.func import jacrev, vmap

from algorithms.planners.derivatives import SOLVER_DTYPE, Derivatives, chain_cost
from envs.simulate import SimulatorLayout
from envs.spec import TaskSpec

Tensor = torch.Tensor


def _fd_stencil(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central-difference stencil for the gradient and Hessian of a function of ``dim`` variables.

    Returns ``points [P, dim]`` (offsets in units of the step ``h``) and matrices ``G [dim, P]``,
    ``Hm [dim * dim, P]`` with ``grad = G @ f(points) / h`` and ``hess = Hm @ f(points) / h^2``.
    ``P = 1 + 2 dim + 2 dim (dim - 1)``: the center, ``+-e_i``, and ``(+-e_i +-e_j)`` for ``i < j``.
    """
    eye = np.eye(dim)
    pairs = [(i, j) for i in range(dim) for j in range(i + 1, dim)]
    pts = [np.zeros(dim)]
    for i in range(dim):
        pts += [eye[i], -eye[i]]
    for i, j in pairs:
        pts += [eye[i] + eye[j], eye[i] - eye[j], -eye[i] + eye[j], -eye[i] - eye[j]]
    points = np.asarray(pts)
    p = len(points)
    g = np.zeros((dim, p))
    hm = np.zeros((dim, dim, p))
    for i in range(dim):
        g[i, 1 + 2 * i], g[i, 2 + 2 * i] = 0.5, -0.5
        hm[i, i, 0], hm[i, i, 1 + 2 * i], hm[i, i, 2 + 2 * i] = -2.0, 1.0, 1.0
    base = 1 + 2 * dim
    for q, (i, j) in enumerate(pairs):
        c = np.array([0.25, -0.25, -0.25, 0.25])
        hm[i, j, base + 4 * q : base + 4 * q + 4] = c
        hm[j, i, base + 4 * q : base + 4 * q + 4] = c
    return points, g, hm.reshape(dim * dim, p)


@dataclass
class MujocoProblem:
    """Provider (b): the MuJoCo simulator of a ``Capability.SIMULATOR`` task.

    Stored states ``[S] = [mjSTATE_FULLPHYSICS (Sp), stage values (K)]`` (build the first with
    :meth:`initial_state`); tangent size ``n = 2 nv + na``. ``step`` is the env step: ``frame_skip``
    ``mj_step``\\ s with the control held, then the stage values read as the env's ``_get_obs``
    does. See the module docstring for how the derivatives are computed.

    Args:
        task: the task (its env is built once to take its ``MjModel``).
        eps: finite-difference step of the dynamics derivatives (``mjd_transitionFD``'s ``eps``,
            and the central differences on RK4 models; ``1e-6`` as ``envs.mujoco.inverted_pendulum``).
        cost_eps: step of the cost's central differences (second differences: ``1e-4`` balances
            truncation, ``O(h^2)``, and round-off, ``O(1e-16 |c| / h^2)``).
        method: ``"auto"``: ``mjd_transitionFD`` unless the integrator is RK4; or force
            ``"transition_fd"`` / ``"rollout_fd"``.
    """

    task: TaskSpec
    eps: float = 1e-6
    cost_eps: float = 1e-4
    method: Literal["auto", "transition_fd", "rollout_fd"] = "auto"
    batched: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        import mujoco
        from mujoco import rollout as mj_rollout

        task = self.task
        if task.reward_fn is None:
            raise ValueError(f"task {task.name!r} has no reward_fn")
        layout = SimulatorLayout.of(task)
        self.model, self.frame_skip = layout.model, layout.frame_skip
        self._obs_fn, self._stage_fn, self._sig = layout.obs_fn, layout.stage_fn, layout.sig
        self.phys_dim, self._qpos, self._qvel, self._act = (
            layout.phys_dim,
            layout.qpos,
            layout.qvel,
            layout.act,
        )
        m = self.model
        self._mj = mujoco
        self.nq, self.nv, self.na = int(m.nq), int(m.nv), int(m.na)
        self.state_dim = 2 * self.nv + self.na
        self.act_dim = int(m.nu)
        self._data = mujoco.MjData(m)
        self.stage_dim = layout.stage_dim
        self._pool = mj_rollout.Rollout(nthread=0)
        self._rollout_datas = [mujoco.MjData(m)]
        self._stencil = _fd_stencil(self.state_dim)
        o_dim, nu, reward_fn = task.obs_dim, self.act_dim, task.reward_fn

        def neg_reward(v: Tensor) -> Tensor:
            return -reward_fn(v[:o_dim], v[o_dim : o_dim + nu], v[o_dim + nu :])

        def stacked(v: Tensor) -> tuple[Tensor, Tensor]:
            g = jacrev(neg_reward)(v)
            return g, g

        self._reward_quad = vmap(jacrev(stacked, has_aux=True))  # [H, 2O+m] -> Hessian, grad

    # --- states ----------------------------------------------------------------------------

    @property
    def uses_transition_fd(self) -> bool:
        """Whether the dynamics derivatives come from ``mjd_transitionFD`` (else rollout FD)."""
        if self.method == "auto":
            return int(self.model.opt.integrator) != int(self._mj.mjtIntegrator.mjINT_RK4)
        return self.method == "transition_fd"

    def _stage(self) -> np.ndarray:
        if self._stage_fn is None:
            return np.zeros(0)
        return np.asarray(self._stage_fn(self.model, self._data), np.float64).reshape(-1)

    def initial_state(self, sim_state: np.ndarray) -> Tensor:
        """``[Sp] -> [S]``: an env's ``info["sim_state"]`` with the stage values of the state
        itself (``mj_forward``; see :mod:`envs.simulate` on why the env's may differ slightly)."""
        phys = np.asarray(sim_state, np.float64).reshape(-1)
        if phys.size != self.phys_dim:
            raise ValueError(f"sim_state must have {self.phys_dim} entries, got {phys.size}")
        stage = np.zeros(0)
        if self._stage_fn is not None:
            self._mj.mj_setState(self.model, self._data, phys, self._sig)
            self._mj.mj_forward(self.model, self._data)
            stage = self._stage()
        return torch.from_numpy(np.concatenate([phys, stage]))

    def step(self, x: Tensor, u: Tensor) -> Tensor:
        mj, m, d, sig = self._mj, self.model, self._data, self._sig
        xn = x.detach().numpy().copy()
        ctrl = u.detach().numpy()
        for i in range(xn.shape[0]):
            mj.mj_setState(m, d, xn[i, : self.phys_dim], sig)
            d.ctrl[:] = ctrl[i]
            mj.mj_step(m, d, self.frame_skip)
            mj.mj_getState(m, d, xn[i, : self.phys_dim], sig)
            if self.stage_dim:
                xn[i, self.phys_dim :] = self._stage()
        return torch.from_numpy(xn)

    def observe(self, states: np.ndarray) -> np.ndarray:
        """``[..., S] -> [..., O]``: the task's observation of stored states."""
        stage = states[..., self.phys_dim :] if self._stage_fn is not None else None
        return np.asarray(self._obs_fn(states[..., self._qpos], states[..., self._qvel], stage))

    def cost(self, xs: Tensor, us: Tensor) -> Tensor:
        assert self.task.reward_fn is not None
        obs = torch.from_numpy(self.observe(xs.detach().numpy())).to(SOLVER_DTYPE)
        c = -self.task.reward_fn(obs[..., :-1, :], us, obs[..., 1:, :])
        return torch.cat([c, c.new_zeros((*c.shape[:-1], 1))], -1)

    # --- tangent space ---------------------------------------------------------------------

    def _perturb(self, phys: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """``phys [..., Sp] (+) dx [..., n] -> [..., Sp]`` (positions via ``mj_integratePos``)."""
        out = np.array(phys, np.float64, copy=True)
        nv = self.nv
        if self.nq == nv:
            out[..., self._qpos] += dx[..., :nv]
        else:
            flat_q = out[..., self._qpos].reshape(-1, self.nq)
            flat_d = np.ascontiguousarray(dx[..., :nv].reshape(-1, nv))
            for i in range(flat_q.shape[0]):
                q = np.ascontiguousarray(flat_q[i])
                self._mj.mj_integratePos(self.model, q, flat_d[i], 1.0)
                flat_q[i] = q
            out[..., self._qpos] = flat_q.reshape(out[..., self._qpos].shape)
        out[..., self._qvel] += dx[..., nv : 2 * nv]
        out[..., self._act] += dx[..., 2 * nv :]
        return out

    def _tangent_difference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a [..., Sp] (-) b [..., Sp] -> [..., n]``."""
        nv = self.nv
        if self.nq == nv:
            dq = a[..., self._qpos] - b[..., self._qpos]
        else:
            qa = a[..., self._qpos].reshape(-1, self.nq)
            qb = b[..., self._qpos].reshape(-1, self.nq)
            dq = np.empty((qa.shape[0], nv))
            for i in range(qa.shape[0]):
                self._mj.mj_differentiatePos(self.model, dq[i], 1.0, qb[i].copy(), qa[i].copy())
            dq = dq.reshape((*a.shape[:-1], nv))
        return np.concatenate(
            [dq, a[..., self._qvel] - b[..., self._qvel], a[..., self._act] - b[..., self._act]],
            -1,
        )

    def difference(self, x: Tensor, ref: Tensor) -> Tensor:
        p = self.phys_dim
        d = self._tangent_difference(x[..., :p].detach().numpy(), ref[..., :p].detach().numpy())
        return torch.from_numpy(d)

    # --- derivatives -----------------------------------------------------------------------

    def transition_derivatives(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """``xs [H, S]``, ``us [H, m]`` -> ``(A [H, n, n], B [H, n, m])`` of the env step."""
        if self.uses_transition_fd:
            return self._transition_fd(xs, us)
        return self._rollout_fd(xs, us)

    def _transition_fd(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """``mjd_transitionFD`` of every physics step, chained over the env step."""
        mj, m, d = self._mj, self.model, self._data
        n, nu, h = self.state_dim, self.act_dim, xs.shape[0]
        a_out, b_out = np.empty((h, n, n)), np.empty((h, n, nu))
        a_k, b_k = np.empty((n, n)), np.empty((n, nu))
        for t in range(h):
            mj.mj_setState(m, d, xs[t, : self.phys_dim], self._sig)
            d.ctrl[:] = us[t]
            a_env, b_env = np.eye(n), np.zeros((n, nu))
            for _ in range(self.frame_skip):
                mj.mjd_transitionFD(m, d, self.eps, True, a_k, b_k, None, None)
                a_env, b_env = a_k @ a_env, a_k @ b_env + b_k
                mj.mj_step(m, d)
            a_out[t], b_out[t] = a_env, b_env
        return torch.from_numpy(a_out), torch.from_numpy(b_out)

    def _rollout_fd(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """Central differences of the env step in tangent coordinates, one ``mujoco.rollout``."""
        n, nu, h, fs, sp = self.state_dim, self.act_dim, xs.shape[0], self.frame_skip, self.phys_dim
        k = n + nu
        dirs = np.concatenate([np.eye(k), -np.eye(k)]) * self.eps  # [2k, k]: + then -
        phys = np.repeat(xs[:, None, :sp], 2 * k, axis=1)  # [H, 2k, Sp]
        init = self._perturb(phys, np.broadcast_to(dirs[None, :, :n], (h, 2 * k, n)))
        ctrl = us[:, None, :] + dirs[None, :, n:]  # [H, 2k, m]
        ctrl_seq = np.repeat(ctrl.reshape(h * 2 * k, 1, nu), fs, axis=1)
        init = init.reshape(h * 2 * k, sp)
        states = np.empty((h * 2 * k, fs, sp))
        self._pool.rollout(
            [self.model] * (h * 2 * k),
            self._rollout_datas,
            init,
            np.ascontiguousarray(ctrl_seq),
            control_spec=int(self._mj.mjtState.mjSTATE_CTRL),
            skip_checks=True,
            nstep=fs,
            initial_warmstart=None,
            state=states,
            sensordata=None,
            chunk_size=None,
        )
        out = states[:, -1].reshape(h, 2, k, sp)
        jac = self._tangent_difference(out[:, 0], out[:, 1]) / (2 * self.eps)  # [H, k, n]
        jac = np.ascontiguousarray(jac.transpose(0, 2, 1))  # [H, n, k]
        return torch.from_numpy(jac[:, :, :n].copy()), torch.from_numpy(jac[:, :, n:].copy())

    def observation_derivatives(self, xs: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
        """The observation of states ``xs [T, S]`` and its first and second derivatives in
        tangent coordinates, by central differences of the task's ``StateObservation`` (stage
        values held): ``obs [T, O]``, ``jac [T, O, n]``, ``hess [T, O, n, n]``."""
        points, g_mat, h_mat = self._stencil
        t_len, n, sp, p = xs.shape[0], self.state_dim, self.phys_dim, len(points)
        phys = self._perturb(
            np.repeat(xs[:, None, :sp], p, 1),
            np.broadcast_to(points * self.cost_eps, (t_len, p, n)),
        )
        stage = np.broadcast_to(xs[:, None, sp:], (t_len, p, self.stage_dim))
        obs = torch.from_numpy(self.observe(np.concatenate([phys, stage], -1))).to(SOLVER_DTYPE)
        jac = torch.einsum("tpo,np->ton", obs, torch.from_numpy(g_mat)) / self.cost_eps
        hess = torch.einsum("tpo,qp->toq", obs, torch.from_numpy(h_mat)) / self.cost_eps**2
        return obs[:, 0], jac, hess.reshape(t_len, -1, n, n)

    def cost_derivatives(self, xs: np.ndarray, us: np.ndarray) -> tuple[Tensor, Tensor]:
        """Gradient ``[H, N]`` and Hessian ``[H, N, N]`` of ``c = -reward(obs(x), u, obs(x'))`` in
        ``w = (dx, du, dx')`` (``N = 2n + m``) at every step.

        The reward is differentiated by autograd in ``(o, u, o')`` (``vmap(jacrev(jacrev))``, one
        call), the observation map by central differences (:meth:`observation_derivatives`), and
        the two chained exactly: ``c_w = M'r_v``, ``c_ww = M'r_vv M + sum_k r_{v_k} d2 o_k`` with
        ``M = diag(do/dx, I, do'/dx')``. Differences of the reward itself would see its step
        functions (InvertedDoublePendulum's alive bonus) as huge spurious slopes; autograd gives
        them zero derivative, as for the torch models.
        """
        assert self.task.reward_fn is not None
        n, nu = self.state_dim, self.act_dim
        h = us.shape[0]
        obs, jac, hess_o = self.observation_derivatives(xs)  # over H + 1 states
        o_dim = obs.shape[1]
        v = torch.cat([obs[:-1], torch.from_numpy(us), obs[1:]], -1)  # [H, 2O + m]
        r_hess, r_grad = self._reward_quad(v)
        m_mat = v.new_zeros(h, 2 * o_dim + nu, 2 * n + nu)
        m_mat[:, :o_dim, :n] = jac[:-1]
        m_mat[:, o_dim : o_dim + nu, n : n + nu] = torch.eye(nu, dtype=SOLVER_DTYPE)
        m_mat[:, o_dim + nu :, n + nu :] = jac[1:]
        grad = (m_mat.transpose(1, 2) @ r_grad.unsqueeze(-1)).squeeze(-1)
        hess = m_mat.transpose(1, 2) @ r_hess @ m_mat
        hess[:, :n, :n] += torch.einsum("to,toij->tij", r_grad[:, :o_dim], hess_o[:-1])
        hess[:, n + nu :, n + nu :] += torch.einsum(
            "to,toij->tij", r_grad[:, o_dim + nu :], hess_o[1:]
        )
        return grad, hess

    @torch.no_grad()
    def derivatives(self, xs: Tensor, us: Tensor) -> Derivatives:
        n = self.state_dim
        x_np, u_np = xs.detach().numpy(), us.detach().numpy()
        fx, fu = self.transition_derivatives(x_np[:-1], u_np)
        gw, hw = self.cost_derivatives(x_np, u_np)
        grad, hess = chain_cost(gw, hw, torch.cat([fx, fu], 2))
        hess = 0.5 * (hess + hess.transpose(1, 2))
        return Derivatives(
            fx=fx,
            fu=fu,
            cx=torch.cat([grad[:, :n], grad.new_zeros(1, n)]),
            cu=grad[:, n:],
            cxx=torch.cat([hess[:, :n, :n], hess.new_zeros(1, n, n)]),
            cuu=hess[:, n:, n:],
            cux=hess[:, n:, :n],
        )
