"""Settings of the probabilistic ensemble (:class:`EnsembleConfig`), apart from the model
(:mod:`algorithms.models.ensemble`) so that plugin configs can nest them without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from algorithms.api import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range

#: MBPO's per-layer L2 coefficients for its 4x200 model (jannerm/mbpo ``construct_model``);
#: the same values as the PETS half-cheetah config (kchua/handful-of-trials ``halfcheetah.py``).
MBPO_WEIGHT_DECAYS: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)


def default_weight_decays(layers: int) -> tuple[float, ...]:
    """MBPO's decays for ``layers == 4``; otherwise a linear ramp between the same end points."""
    if layers == 4:
        return MBPO_WEIGHT_DECAYS
    return tuple(float(x) for x in np.linspace(2.5e-5, 1e-4, layers + 1))


@dataclass(frozen=True)
class EnsembleConfig:
    """Hyperparameters of :class:`ProbabilisticEnsemble` (defaults: MBPO / PETS code)."""

    members: PositiveInt = 7
    """Ensemble size. MBPO ``num_networks=7`` (jannerm/mbpo ``mbpo/models/constructor.py``)."""
    elites: PositiveInt = 5
    """Members used for prediction, the best by holdout MSE. MBPO ``num_elites=5``."""
    hidden: PositiveInt = 200
    """Units per hidden layer. MBPO ``hidden_dim=200``; PETS half-cheetah config (200)."""
    layers: NonNegativeInt = 4
    """Hidden layers. MBPO ``construct_model`` (4 hidden FC layers); PETS half-cheetah (4)."""
    weight_decays: tuple[NonNegativeFloat, ...] | None = None
    """L2 coefficient per layer (``layers + 1`` values, output layer last), added to the loss as
    ``wd * sum(W**2) / 2`` (TF ``l2_loss``). ``None``: MBPO's ``(2.5e-5, 5e-5, 7.5e-5, 7.5e-5,
    1e-4)`` (jannerm/mbpo ``construct_model``; PETS half-cheetah config)."""
    lr: PositiveFloat = 1e-3
    """Adam learning rate. MBPO ``construct_model`` (``learning_rate=0.001``); PETS configs."""
    batch_size: PositiveInt = 256
    """Minibatch per member. MBPO ``_train_model(batch_size=256)``."""
    holdout_ratio: Annotated[float, Range(ge=0, lt=1)] = 0.2
    """Fraction of the data held out for early stopping and elites. MBPO ``holdout_ratio=0.2``."""
    max_holdout: NonNegativeInt = 5000
    """Cap on the holdout set size. MBPO ``BNN.train(max_logging=5000)``."""
    patience: NonNegativeInt = 5
    """Stop once more than this many epochs passed with no member improving its holdout MSE by
    more than ``improvement`` (relative). MBPO ``BNN._max_epochs_since_update = 5``."""
    improvement: NonNegativeFloat = 0.01
    """Relative holdout-MSE improvement that counts (MBPO ``BNN._save_best``: 1%)."""
    max_epochs: NonNegativeInt = 0
    """Hard cap on epochs per :meth:`fit` (0: no cap, early stopping only; MBPO's
    ``max_epochs=None``)."""
    bootstrap: bool = True
    """Each member trains on its own bootstrap resample (PETS/MBPO ``np.random.randint``
    indices, rows reshuffled every epoch). ``False``: every member sees the data in its own
    shuffled order."""
    logvar_penalty: NonNegativeFloat = 0.01
    """Coefficient of ``sum(max_logvar) - sum(min_logvar)`` in the loss (PETS ``BNN`` and MBPO
    ``BNN._compile_losses``: 0.01)."""
    init_max_logvar: float = 0.5
    """Initial upper soft bound on the log-variance (PETS/MBPO ``BNN``: ``0.5``)."""
    init_min_logvar: float = -10.0
    """Initial lower soft bound on the log-variance (PETS/MBPO ``BNN``: ``-10``)."""
    learn_reward: bool = False
    """Also predict the reward as an extra output (MBPO predicts ``[reward, delta_obs]``; PETS
    uses a known reward function: off by default)."""
    normalize_targets: bool = True
    """Standardize the targets (state deltas, reward) per dimension. Not in PETS/MBPO (they
    standardize inputs only); makes the NLL, the log-variance bounds and the holdout MSE
    comparable across dimensions of very different scale."""
    bf16: bool = False
    """Run the network's forward passes (training loss, holdout evaluation, prediction) under
    ``torch.autocast(dtype=torch.bfloat16)`` on the model's device: the matmuls then use the
    CPU's bf16 units (AVX-512 BF16 / AMX; ~4x the fp32 rate) or the GPU's bf16 tensor cores.
    Parameters, Adam state, normalizers, the log-variance bounds, the Gaussian NLL and every
    output returned to callers stay float32. Off by default: PETS and MBPO train in fp32."""

    def decays(self) -> tuple[float, ...]:
        """The per-layer decays in effect (``layers + 1`` values)."""
        wd = (
            default_weight_decays(self.layers) if self.weight_decays is None else self.weight_decays
        )
        if len(wd) != self.layers + 1:
            raise ValueError(
                f"weight_decays has {len(wd)} values; {self.layers} hidden layers need "
                f"{self.layers + 1} (one per hidden layer plus the output layer)"
            )
        return tuple(wd)

    def __post_init__(self) -> None:
        if not 1 <= self.elites <= self.members:
            raise ValueError(f"elites must be in [1, members={self.members}], got {self.elites}")
        if not 0.0 <= self.holdout_ratio < 1.0:
            raise ValueError(f"holdout_ratio must be in [0, 1), got {self.holdout_ratio}")
        self.decays()
