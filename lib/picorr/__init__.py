"""picorr: multipartite correlations in permutation-invariant open quantum systems.

Finite N (Appendix A of the paper): a model (:class:`QubitModel`, :func:`lmg`) ->
its Liouvillian on the Dicke blocks (:func:`liouvillian`) -> the steady state with its
evidence (:func:`steady_state`) -> the information measures (:func:`correlations`).
"""

from .dicke import BlockLayout, j_values, ln_dim
from .information import Correlations, NegativeEigenvalueError, binary_entropy, correlations
from .liouvillian import liouvillian
from .models import CollectiveJump, ModelError, QubitModel, lmg
from .states import BlockState, dicke_state, maximally_mixed, product_state
from .steady import (
    NoUniqueSteadyStateError,
    NotConvergedError,
    SteadyState,
    SteadyStateError,
    steady_state,
)

__version__ = "0.1.0"

__all__ = [
    "BlockLayout", "j_values", "ln_dim",
    "Correlations", "NegativeEigenvalueError", "binary_entropy", "correlations",
    "liouvillian",
    "CollectiveJump", "ModelError", "QubitModel", "lmg",
    "BlockState", "dicke_state", "maximally_mixed", "product_state",
    "NoUniqueSteadyStateError", "NotConvergedError", "SteadyState", "SteadyStateError",
    "steady_state",
]
