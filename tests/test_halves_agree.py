"""The two halves of the theory tied together: for product states rho_m^{(x)N}, the exact
finite-N time derivative of <m> computed from the Dicke-block Liouvillian (the finite-N
engine) equals SymPy's exact product-state drift at that N, and approaches the
mean-field drift g(m) of Eq. (5) with an error falling like 1/N."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from picorr.dicke import BlockLayout
from picorr.information import magnetization
from picorr.liouvillian import liouvillian
from picorr.meanfield import derive_meanfield, from_qubit_model, product_state_drift
from picorr.models import CollectiveJump, QubitModel, lmg
from picorr.states import BlockState, product_state


def engine_drift(model, m):
    st = product_state(model.N, m)
    lay = BlockLayout(model.N)
    dst = BlockState(lay, liouvillian(model, lay) @ st.rho)
    return magnetization(dst)  # linear in the state: d<m>/dt


MODELS = {
    "lmg": lambda N: lmg(N, 3.0, 0.5, 1.68, 1.0),
    "general": lambda N: QubitModel(
        N=N,
        K=[[1.3, 0.4, -0.2], [0.4, -0.7, 0.3], [-0.2, 0.3, 0.9]],
        c=[0.3, -0.45, 0.2],
        jumps=(CollectiveJump(0.8, a_minus=1), CollectiveJump(0.5, a_plus=0.3, a_z=0.6 + 0.2j)),
        gamma_minus=0.35,
        gamma_plus=0.6,
        gamma_z=0.25,
    ),
}
M0 = np.array([0.35, -0.4, 0.5])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("N", [3, 8, 21])
def test_engine_equals_exact_product_drift(name, N):
    model = MODELS[name](N)
    Nsym, xi, rhs = product_state_drift(from_qubit_model(model))
    exact = np.array(
        [complex(sp.N(e.subs({Nsym: N, **dict(zip(xi, M0))}))).real for e in rhs]
    )
    np.testing.assert_allclose(engine_drift(model, M0), exact, atol=1e-10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_engine_drift_approaches_meanfield_like_one_over_N(name):
    mf = derive_meanfield(MODELS[name](2))
    g = mf.rhs(M0, mf.param_values())
    Ns = [10, 20, 40, 80]
    err = [np.linalg.norm(engine_drift(MODELS[name](N), M0) - g) for N in Ns]
    assert err[-1] < err[0]
    # 1/N: doubling N halves the error (to 15 % at these sizes)
    ratios = np.array(err[:-1]) / np.array(err[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.15)
