"""The particle method: the Euler McKean-Vlasov engine (:mod:`.engine`) and its protocol adapter (:mod:`.method`)."""

from .engine import ParticleState, SimulationError, advance, init, step, target_batch, velocity
from .method import ParticlesMethod

__all__ = ["ParticleState", "SimulationError", "init", "step", "velocity", "advance", "target_batch",
           "ParticlesMethod"]
