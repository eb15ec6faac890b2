"""The amortized method: MLP backward pass, Adam, the drifting regression.

Truths used here, none produced by the code under test:

- central finite differences of the forward pass (gradients);
- scipy.special (activations), the He/LeCun variance formulas (init),
  scipy.stats' uniform law (torch's default init) and a mean-field
  recursion by Gauss-Hermite quadrature (the untrained output's spread);
- Kingma & Ba's Algorithm 1 written out in scalar Python (Adam), and the
  minimiser of a convex quadratic from scipy.linalg.solve;
- Gretton et al. Prop. 2 (eq. 47): the drifted-target loss gradient equals
  ``eta sigma^2 dMMD^2/dtheta``, with the right side by finite differences of
  the dense-reference MMD^2;
- the moments of the Gaussian target N(mu, I);
- an uninterrupted run (bit-identical resume).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats

import wgfsim
from wgfsim import targets as wgfsim_targets
from wgfsim.methods.generator import (
    ACTIVATIONS,
    MLPConfig,
    TrainConfig,
    adam_init,
    adam_step,
    apply,
    backward,
    checkpoint,
    forward,
    init,
    init_params,
    loss_and_grads,
    param_names,
    restore,
    samples,
    step,
)

# ---------------------------------------------------------------- helpers


def _random_params(cfg: MLPConfig, seed: int) -> dict:
    """Initial weights plus random biases (zero biases would hide bias-gradient bugs)."""
    rng = np.random.default_rng(seed)
    params = init_params(cfg, rng)
    return {k: p + 0.3 * rng.standard_normal(p.shape) if k.endswith(("b", "b1", "b2")) else p for k, p in params.items()}


def _fd_gradient(fun, params: dict, h: float) -> dict:
    """Central differences ``(f(theta + h e) - f(theta - h e)) / 2h`` for every scalar parameter."""
    grads = {}
    for name, p in params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = fun(params)
            p[idx] = old - h
            down = fun(params)
            p[idx] = old
            g[idx] = (up - down) / (2.0 * h)
        grads[name] = g
    return grads


def _rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# ---------------------------------------------------------------- MLP


@pytest.mark.parametrize(
    "activation,architecture",
    [(a, "residual") for a in ("silu", "relu", "tanh", "gelu", "identity")] + [("silu", "mlp"), ("relu", "mlp")],
)
def test_mlp_backward_matches_central_differences(activation, architecture):
    cfg = MLPConfig(out_dim=2, latent_dim=3, width=5, depth=3 if architecture == "mlp" else 2, activation=activation,
                    architecture=architecture)
    params = _random_params(cfg, seed=1)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 3))  # (B, latent)
    weights = rng.standard_normal((4, 2))  # dL/dx for L = sum(weights * x)

    def loss(p):
        return float(np.sum(weights * apply(p, z, cfg)))

    if activation == "relu":
        # relu is piecewise linear: differences are exact unless a step crosses a kink
        _, cache = forward(params, z, cfg)
        assert min(np.abs(a).min() for a in cache["a"] + cache["h"][1:]) > 1e-4
    _, cache = forward(params, z, cfg)
    grads = backward(params, cache, weights, cfg, with_z=True)
    fd = _fd_gradient(loss, params, h=1e-6 if activation == "relu" else 1e-5)
    assert list(grads) == param_names(cfg) + ["z"]
    for name in param_names(cfg):
        assert grads[name].shape == params[name].shape
        assert _rel_err(grads[name], fd[name]) < 1e-6, name
    # and the latent gradient, by differences in z
    fd_z = _fd_gradient(lambda q: float(np.sum(weights * apply(params, q["z"], cfg))), {"z": z.copy()}, h=1e-5)["z"]
    assert _rel_err(grads["z"], fd_z) < 1e-6


def test_activations_against_scipy():
    x = np.linspace(-12.0, 12.0, 2001)
    assert np.allclose(ACTIVATIONS["silu"].f(np, x), x * scipy.special.expit(x), rtol=1e-14, atol=1e-14)
    assert np.allclose(ACTIVATIONS["tanh"].f(np, x), np.tanh(x), rtol=0, atol=0)
    assert np.array_equal(ACTIVATIONS["relu"].f(np, x), np.maximum(x, 0.0))
    # the tanh approximation of GELU is within 5e-4 of the exact x Phi(x) (Hendrycks & Gimpel 2016)
    exact = 0.5 * x * (1.0 + scipy.special.erf(x / math.sqrt(2.0)))
    err = np.abs(ACTIVATIONS["gelu"].f(np, x) - exact)
    assert err.max() < 5e-4
    assert err.max() > 1e-5  # it is the approximation, not the exact erf form
    # no overflow warnings far out: silu(-800) = 0, silu(800) = 800
    with np.errstate(all="raise"):
        assert np.array_equal(ACTIVATIONS["silu"].f(np, np.array([-800.0, 800.0])), np.array([-0.0, 800.0]))


def test_depth_zero_identity_is_the_linear_generator():
    cfg = MLPConfig(out_dim=3, latent_dim=4, width=6, depth=0, activation="identity", architecture="residual")
    params = _random_params(cfg, seed=3)
    assert param_names(cfg) == ["in.W", "in.b", "out.W", "out.b"]
    z = np.random.default_rng(4).standard_normal((7, 4))
    W = params["in.W"] @ params["out.W"]  # (4, 3): the linear map, written out by hand
    c = params["in.b"] @ params["out.W"] + params["out.b"]  # (3,)
    np.testing.assert_allclose(apply(params, z, cfg), z @ W + c, rtol=1e-13, atol=1e-13)


def test_init_scalings_are_he_and_lecun():
    cfg = MLPConfig(out_dim=2, latent_dim=64, width=512, depth=4, activation="silu", architecture="residual", init="he")
    params = init_params(cfg, np.random.default_rng(5))
    # sample std of ~2.6e5 normals: relative standard error ~0.14 %, 1 % is > 7 sigma
    assert abs(params["in.W"].std() / math.sqrt(1 / 64) - 1) < 0.01  # LeCun on the raw latent
    assert abs(params["block2.W1"].std() / math.sqrt(2 / 512) - 1) < 0.01  # He
    assert abs(params["block2.W2"].std() / math.sqrt(2 / (512 * 4)) - 1) < 0.01  # He / depth
    assert all(np.all(params[k] == 0) for k in params if k.endswith(("b", "b1", "b2")))
    tanh = init_params(dataclasses.replace(cfg, activation="tanh"), np.random.default_rng(5))
    assert abs(tanh["block2.W1"].std() / math.sqrt(1 / 512) - 1) < 0.01  # LeCun for tanh
    # seeded: same generator state, same network; float32 on request
    again = init_params(cfg, np.random.default_rng(5), dtype=np.float32)
    assert again["out.W"].dtype == np.float32
    np.testing.assert_array_equal(again["out.W"], params["out.W"].astype(np.float32))


def test_plain_mlp_has_the_demo_network_shapes():
    # Deng et al.'s toy demo: Linear 32-256, 256-256, 256-256, 256-2 with SiLU between
    cfg = MLPConfig(out_dim=2, latent_dim=32, width=256, depth=3, architecture="mlp", init="torch")
    params = init_params(cfg, np.random.default_rng(0))
    shapes = {k: p.shape for k, p in params.items()}
    assert shapes == {"in.W": (32, 256), "in.b": (256,), "layer1.W": (256, 256), "layer1.b": (256,),
                      "layer2.W": (256, 256), "layer2.b": (256,), "out.W": (256, 2), "out.b": (2,)}
    assert wgfsim.methods.generator.n_params(cfg) == sum(p.size for p in params.values()) == 140_546
    # the forward pass is the composition written out by hand
    silu = lambda a: a * scipy.special.expit(a)  # noqa: E731
    z = np.random.default_rng(1).standard_normal((5, 32))
    h = z @ params["in.W"] + params["in.b"]
    h = silu(h) @ params["layer1.W"] + params["layer1.b"]
    h = silu(h) @ params["layer2.W"] + params["layer2.b"]
    np.testing.assert_allclose(apply(params, z, cfg), silu(h) @ params["out.W"] + params["out.b"], rtol=1e-12)


def test_torch_init_is_uniform_on_one_over_sqrt_fan_in():
    cfg = MLPConfig(out_dim=2, latent_dim=32, width=256, depth=3, architecture="mlp", init="torch")
    params = init_params(cfg, np.random.default_rng(2))
    for name, p in params.items():
        layer, leaf = name.rsplit(".", 1)
        fan_in = params[f"{layer}.{leaf.replace('b', 'W')}"].shape[0]  # a bias shares its layer's fan-in (nn.Linear)
        bound = 1.0 / math.sqrt(fan_in)
        assert np.abs(p).max() <= bound
        if p.size >= 256:  # Kolmogorov-Smirnov against U(-bound, bound)
            assert scipy.stats.kstest(p.ravel(), scipy.stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3, name
    # the residual network takes it too: every weight within its own fan-in's bound
    res = init_params(MLPConfig(out_dim=2, latent_dim=8, width=64, depth=2, init="torch", architecture="residual"),
                      np.random.default_rng(3))
    assert np.abs(res["block1.W2"]).max() <= 1 / 8 and res["block1.W2"].std() == pytest.approx(1 / 8 / math.sqrt(3), rel=0.03)


def _mean_field_spread(latent: int, width: int, depth: int) -> float:
    """Expected std over latents of each output coordinate of the untrained plain SiLU MLP under torch's init.

    Mean-field recursion over layers: a pre-activation is ``m + e`` with
    ``e ~ N(0, v)`` its variation over latents and ``m ~ N(0, q)`` its
    unit-to-unit mean; weights and biases have variance ``1/(3 fan_in)``,
    so ``v' = (1/3) E_m Var_e silu(m + e)`` and ``q' = 1/(3 fan_in) + (1/3)
    E_m (E_e silu(m + e))^2``, each expectation by Gauss-Hermite quadrature;
    the first layer is exact (``v = 1/3``, ``q = 1/(3 latent)``).
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    v, q = 1.0 / 3.0, 1.0 / (3 * latent)
    for _ in range(depth):
        u = scipy.special.expit(np.sqrt(q) * nodes[:, None] + np.sqrt(v) * nodes[None, :])
        u = u * (np.sqrt(q) * nodes[:, None] + np.sqrt(v) * nodes[None, :])  # silu(m + e), (m nodes, e nodes)
        mean_e = u @ weights
        var_e = (u * u) @ weights - mean_e**2
        v, q = weights @ var_e / 3.0, 1.0 / (3 * width) + weights @ mean_e**2 / 3.0
    return math.sqrt(v)


def test_torch_init_starts_collapsed_at_the_predicted_spread():
    # the demo's network starts nearly collapsed: spread ~0.015 against the swiss roll's 0.43
    cfg = MLPConfig(out_dim=2, latent_dim=32, width=256, depth=3, architecture="mlp", init="torch")
    expected = _mean_field_spread(32, 256, 3)
    assert 0.01 < expected < 0.02
    measured = []
    for seed in range(4):  # 4 networks x 2 coordinates, 20000 latents each
        x = apply(init_params(cfg, np.random.default_rng(seed)), np.random.default_rng(10 + seed).standard_normal((20_000, 32)), cfg)
        measured.append(x.var(axis=0))
    assert math.sqrt(np.mean(measured)) == pytest.approx(expected, rel=0.15)
    # He's normal init keeps the spread O(1): the two options differ by a factor of more than 10
    he = dataclasses.replace(cfg, init="he")
    x = apply(init_params(he, np.random.default_rng(0)), np.random.default_rng(10).standard_normal((20_000, 32)), he)
    assert math.sqrt(x.var(axis=0).mean()) > 10 * expected


def test_mlp_config_rejects_bad_values():
    with pytest.raises(ValueError, match="activation"):
        MLPConfig(out_dim=2, activation="swish")
    with pytest.raises(ValueError, match="depth"):
        MLPConfig(out_dim=2, depth=-1)
    with pytest.raises(ValueError, match="depth"):
        MLPConfig(out_dim=2, depth=0, architecture="mlp")  # a plain MLP has at least one hidden layer
    with pytest.raises(ValueError, match="architecture"):
        MLPConfig(out_dim=2, architecture="resnet")
    with pytest.raises(ValueError, match="init"):
        MLPConfig(out_dim=2, init="xavier")
    with pytest.raises(ValueError, match="out_dim"):
        MLPConfig(out_dim=0)
    with pytest.raises(ValueError, match="latent"):
        forward(init_params(MLPConfig(out_dim=2, latent_dim=3, width=4, depth=1), np.random.default_rng(0)),
                np.zeros((5, 2)), MLPConfig(out_dim=2, latent_dim=3, width=4, depth=1))


# ---------------------------------------------------------------- Adam


def test_adam_two_steps_match_algorithm_1_by_hand():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w0 = [1.0, -2.0, 0.5]
    g1 = [0.5, -0.1, 0.0]
    g2 = [-0.2, 0.3, 1.0]
    params = {"w": np.array(w0)}
    state = adam_init(params)
    params, state = adam_step(params, {"w": np.array(g1)}, state, lr)
    # Kingma & Ba: the first bias-corrected step is m_hat/sqrt(v_hat) = g/|g|, i.e. lr*sign(g) (0 where g = 0)
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 0.5], rtol=0, atol=1e-8)
    params, state = adam_step(params, {"w": np.array(g2)}, state, lr)
    expected = []
    for w, a, b in zip(w0, g1, g2):
        w1 = w - lr * ((1 - b1) * a / (1 - b1)) / (math.sqrt((1 - b2) * a * a / (1 - b2)) + eps)
        m2 = b1 * (1 - b1) * a + (1 - b1) * b
        v2 = b2 * (1 - b2) * a * a + (1 - b2) * b * b
        expected.append(w1 - lr * (m2 / (1 - b1**2)) / (math.sqrt(v2 / (1 - b2**2)) + eps))
    np.testing.assert_allclose(params["w"], expected, rtol=1e-14, atol=0)
    # e.g. the first coordinate written out: m2 = 0.09*0.5 - 0.02, v2 = 0.000999*0.25 + 0.001*0.04
    m_hat, v_hat = (0.045 - 0.02) / 0.19, (0.00024975 + 0.00004) / 0.001999
    w1 = 1.0 - 0.1 * 0.5 / (0.5 + eps)
    assert params["w"][0] == pytest.approx(w1 - 0.1 * m_hat / (math.sqrt(v_hat) + eps), rel=1e-14)
    assert state.t == 2


def test_adam_converges_on_a_convex_quadratic():
    # f(A, b) = 1/2 vec(theta)' H vec(theta) - r' vec(theta) over two parameter blocks
    rng = np.random.default_rng(6)
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    H = Q @ np.diag(np.linspace(1.0, 10.0, 6)) @ Q.T  # SPD, condition number 10
    r = rng.standard_normal(6)
    theta_star = scipy.linalg.solve(H, r, assume_a="pos")
    params = {"A": np.zeros((2, 2)), "b": np.zeros(2)}
    state = adam_init(params)
    for t in range(1, 3001):
        theta = np.concatenate([params["A"].ravel(), params["b"]])
        grad = H @ theta - r
        params, state = adam_step(params, {"A": grad[:4].reshape(2, 2), "b": grad[4:]}, state, lr=0.05 / math.sqrt(t))
    theta = np.concatenate([params["A"].ravel(), params["b"]])
    assert np.max(np.abs(theta - theta_star)) < 1e-3


def test_adam_does_not_mutate_its_inputs():
    params = {"w": np.array([1.0, 2.0])}
    state = adam_init(params)
    new, new_state = adam_step(params, {"w": np.array([1.0, -1.0])}, state, lr=0.5)
    np.testing.assert_array_equal(params["w"], [1.0, 2.0])
    np.testing.assert_array_equal(state.m["w"], [0.0, 0.0])
    assert state.t == 0 and new_state.t == 1
    with pytest.raises(ValueError, match="missing"):
        adam_step(params, {}, state, lr=0.1)


# ---------------------------------------------------------------- drifting regression


@pytest.mark.parametrize(
    "cfg",
    [
        MLPConfig(out_dim=2, latent_dim=2, width=3, depth=0, activation="identity", architecture="residual"),  # linear G
        MLPConfig(out_dim=2, latent_dim=3, width=4, depth=1, activation="silu"),  # a nonlinear G
    ],
    ids=["linear", "mlp"],
)
@pytest.mark.parametrize("sigma,eta", [(0.8, 1.0), (1.5, 0.3)])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_drift_loss_gradient_is_eta_sigma2_mmd_gradient(cfg, sigma, eta, backend):
    """Gretton et al. Prop. 2 (eq. 47) for the Gaussian MMD flow.

    ``L = (1/N) sum_i |x_i - sg(x_i + eta v_i)|^2`` has ``dL/dx_i = -(2 eta/N) v_i``;
    with ``v_i = -sigma^2/(2 a_i) dMMD^2/dx_i`` and ``a_i = 1/N`` that is
    ``eta sigma^2 dMMD^2/dx_i``, so ``dL/dtheta = eta sigma^2 dMMD^2/dtheta``.
    """
    params = _random_params(cfg, seed=7)
    rng = np.random.default_rng(8)
    z = rng.standard_normal((12, cfg.latent_dim))  # (N, latent)
    y = rng.standard_normal((20, 2)) + np.array([0.7, -0.4])  # (M, d)
    x = apply(params, z, cfg)  # (N, d)
    v = wgfsim.velocity("mmd", x, y, bandwidth=sigma, backend=backend)  # (N, d)
    loss, grads = loss_and_grads(params, z, x + eta * v, cfg)
    assert loss == pytest.approx(eta**2 * np.mean(np.sum(v * v, axis=1)), rel=1e-12)

    def mmd2(p):
        return wgfsim.energy("mmd", apply(p, z, cfg), y, bandwidth=sigma, backend="numpy")

    fd = _fd_gradient(mmd2, params, h=1e-5)
    for name in params:
        assert _rel_err(grads[name], eta * sigma**2 * fd[name]) < 1e-6, name


def _gaussian_target(n, seed):
    mu = np.array([2.0, -1.0])
    return mu, mu + np.random.default_rng(seed).standard_normal((n, 2))


def test_training_moves_the_generator_onto_the_target_mean():
    """Fast smoke run: 80 MMD steps carry the sample mean from ~0 to mu = (2, -1).

    (Over seeds 0-5 the final error was 0.12-0.23 with 4096 evaluation draws;
    the bound leaves room for that batch noise.)
    """
    mu, y = _gaussian_target(512, seed=9)
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=32, depth=1), learning_rate=1e-2, batch_size=128)
    late = dataclasses.replace(cfg, learning_rate=2e-3)  # same generator, smaller steps: step takes any rate
    state = init(cfg, y, wgfsim.Field("mmd", bandwidth=[1.0, 2.0]), np.random.default_rng(10))
    z_eval = np.random.default_rng(11).standard_normal((4096, 2))
    start = samples(state, z_eval).mean(axis=0)
    assert np.linalg.norm(start - mu) > 1.5
    losses = []
    for k in range(80):
        state, loss = step(state, cfg if k < 60 else late)
        losses.append(loss)
    assert state.step == 80 and math.isfinite(state.velocity_rms)
    assert np.linalg.norm(samples(state, z_eval).mean(axis=0) - mu) < 0.35
    assert np.mean(losses[-10:]) < 0.1 * np.mean(losses[:5])


@pytest.mark.slow
def test_training_matches_gaussian_mean_and_covariance():
    """350 MMD steps (the last 150 at a lower rate) give N(mu, I) to within sampling noise.

    Target: 1024 draws of N((2, -1), I), whose empirical moments differ from
    the population ones by ~0.05; tolerances allow that plus the generator's
    batch noise (B = 256).
    """
    mu, y = _gaussian_target(1024, seed=0)
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=32, depth=1), learning_rate=1e-2, batch_size=256)
    late = dataclasses.replace(cfg, learning_rate=2e-3)
    state = init(cfg, y, wgfsim.Field("mmd", bandwidth=[1.0, 2.0]), np.random.default_rng(1))
    for k in range(350):
        state, _ = step(state, cfg if k < 200 else late)
    x = samples(state, np.random.default_rng(2).standard_normal((8192, 2)))  # (8192, 2)
    assert np.max(np.abs(x.mean(axis=0) - mu)) < 0.15
    assert np.max(np.abs(np.cov(x.T) - np.eye(2))) < 0.15


@pytest.mark.parametrize(
    "flow,opts,minibatch,extra",
    [
        ("sinkhorn", {"epsilon": 0.5}, 48, {}),
        ("sliced", {"n_projections": 8}, 0, {}),
        ("mmd", {}, 0, {"ema_decay": 0.9, "lr_schedule": "cosine", "total_steps": 7}),
        ("drift_da2", {"temperatures": 0.5}, 24, {"fresh_target": True}),  # fresh target rows each step
    ],
)
def test_checkpoint_resume_is_bit_identical(tmp_path, flow, opts, minibatch, extra):
    _, y = _gaussian_target(64, seed=12)
    cfg = TrainConfig(
        mlp=MLPConfig(out_dim=2, latent_dim=3, width=8, depth=1), learning_rate=5e-3, batch_size=32,
        inner_steps=2, minibatch=minibatch, **extra,
    )
    sampler = wgfsim_targets.make("gaussian", mean=[2.0, -1.0]).sample if cfg.fresh_target else None

    def field():
        return wgfsim.Field(flow, rng=np.random.default_rng(13), **opts)

    state = init(cfg, y, field(), np.random.default_rng(14), sampler=sampler)
    for _ in range(3):
        state, _ = step(state, cfg)
    np.savez(tmp_path / "ck.npz", **checkpoint(state))
    # the uninterrupted run: the truth
    losses = []
    for _ in range(4):
        state, loss = step(state, cfg)
        losses.append(loss)
    # the "killed" run: a new process would build a fresh Field and restore from disk
    with np.load(tmp_path / "ck.npz") as saved:
        resumed = restore(dict(saved), cfg, y, field(), sampler=sampler)
    assert resumed.step == 3
    resumed_losses = []
    for _ in range(4):
        resumed, loss = step(resumed, cfg)
        resumed_losses.append(loss)
    assert resumed_losses == losses
    for name in state.params:
        np.testing.assert_array_equal(resumed.params[name], state.params[name])
        np.testing.assert_array_equal(resumed.adam.v[name], state.adam.v[name])
        if state.ema is not None:
            np.testing.assert_array_equal(resumed.ema[name], state.ema[name])
    assert resumed.adam.t == state.adam.t == 14
    assert resumed.rng.bit_generator.state == state.rng.bit_generator.state


def test_fresh_target_rows_are_draws_of_the_sampler_on_the_run_stream():
    """Each step's rows are ``sampler(minibatch, rng)`` on the state's stream, not rows of the fixed sample."""
    _, y = _gaussian_target(64, seed=1)
    seen = []

    def sampler(n, rng):
        rows = rng.standard_normal((n, 2)) + 100.0  # far from the fixed sample: no confusion possible
        seen.append(rows)
        return rows

    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=8, depth=1), batch_size=16, minibatch=40,
                      fresh_target=True)
    rng = np.random.default_rng(7)
    state = init(cfg, y, wgfsim.Field("mmd", bandwidth=1.0), rng, sampler=sampler)
    twin = np.random.default_rng(7)  # the same stream, replayed by hand: init's draws, then latents, then rows
    init_params(cfg.mlp, twin)
    for _ in range(2):
        state, _ = step(state, cfg)
        twin.standard_normal((16, 2))  # the step's latents come first
        np.testing.assert_array_equal(seen[-1], twin.standard_normal((40, 2)) + 100.0)
    assert len(seen) == 2
    # without fresh_target the sampler is not used (and minibatch may not exceed the sample)
    off = dataclasses.replace(cfg, fresh_target=False, minibatch=0)
    step(init(off, y, wgfsim.Field("mmd", bandwidth=1.0), np.random.default_rng(7), sampler=sampler), off)
    assert len(seen) == 2


def _fresh_adam_step_size(cfg, y, at_step):
    """|delta theta| of one step taken at outer step ``at_step`` from fresh Adam moments.

    Adam's first update is ``lr g / (|g| + eps_adam)`` per coordinate
    (Kingma & Ba, Algorithm 1 with t = 1), so every coordinate with
    ``|g| >> eps_adam`` moves by the step size in force, whatever eta or the drift.
    """
    state = init(cfg, y, wgfsim.Field("mmd"), np.random.default_rng(21))
    state = dataclasses.replace(state, step=at_step)
    new, _ = step(state, cfg)
    moves = np.concatenate([np.abs(new.params[k] - state.params[k]).ravel() for k in state.params])
    return np.median(moves)


@pytest.mark.parametrize("at_step", [0, 3, 6, 9, 12])
def test_cosine_schedule_sets_the_first_adam_move(at_step):
    _, y = _gaussian_target(64, seed=3)
    # He's init: gradients far above Adam's eps = 1e-8 (torch's collapsed start has some near it)
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=8, depth=1, architecture="residual", init="he"),
                      learning_rate=1e-2, batch_size=64, lr_schedule="cosine", total_steps=12)
    expected = 1e-2 * 0.5 * (1.0 + math.cos(math.pi * at_step / 12))  # Loshchilov and Hutter 2017, eq. 5
    assert _fresh_adam_step_size(cfg, y, at_step) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    constant = dataclasses.replace(cfg, lr_schedule="constant")
    assert _fresh_adam_step_size(constant, y, at_step) == pytest.approx(1e-2, rel=1e-6)


def test_ema_is_the_exponential_average_of_the_iterates_and_is_what_samples_draws():
    _, y = _gaussian_target(64, seed=4)
    beta = 0.8
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=8, depth=1), learning_rate=1e-2, batch_size=32,
                      ema_decay=beta)
    state = init(cfg, y, wgfsim.Field("mmd"), np.random.default_rng(5))
    iterates = [state.params]
    for _ in range(6):
        state, _ = step(state, cfg)
        iterates.append(state.params)
    # closed form of the recursion started at theta_0: beta^n theta_0 + sum_k (1 - beta) beta^(n-k) theta_k
    n = len(iterates) - 1
    for name in state.params:
        expected = beta**n * iterates[0][name] + sum((1 - beta) * beta ** (n - k) * iterates[k][name] for k in range(1, n + 1))
        np.testing.assert_allclose(state.ema[name], expected, rtol=1e-12, atol=1e-15)
    z = np.random.default_rng(6).standard_normal((10, 2))
    np.testing.assert_array_equal(samples(state, z), apply(state.ema, z, cfg.mlp))
    assert not np.allclose(samples(state, z), apply(state.params, z, cfg.mlp))


def test_restore_refuses_a_different_run():
    _, y = _gaussian_target(64, seed=12)
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=3, width=8, depth=1), batch_size=16)
    state, _ = step(init(cfg, y, wgfsim.Field("mmd"), np.random.default_rng(0)), cfg)
    ck = checkpoint(state)
    with pytest.raises(ValueError, match="target_sample"):
        restore(ck, cfg, y + 1.0, wgfsim.Field("mmd"))
    with pytest.raises(ValueError, match="field"):
        restore(ck, cfg, y, wgfsim.Field("mmd", bandwidth=2.0))
    with pytest.raises(ValueError, match="cfg.mlp"):
        restore(ck, dataclasses.replace(cfg, mlp=dataclasses.replace(cfg.mlp, width=9)), y, wgfsim.Field("mmd"))


def test_train_config_rejects_bad_values():
    mlp = MLPConfig(out_dim=2)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(mlp=mlp, learning_rate=-1.0)
    with pytest.raises(ValueError, match="minibatch"):
        TrainConfig(mlp=mlp, minibatch=-3)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(mlp=mlp, ema_decay=1.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(mlp=mlp, lr_schedule="linear")
    with pytest.raises(ValueError, match="total_steps"):
        TrainConfig(mlp=mlp, lr_schedule="cosine")
    _, y = _gaussian_target(64, seed=0)
    with pytest.raises(ValueError, match="minibatch"):
        init(TrainConfig(mlp=mlp, minibatch=65), y, wgfsim.Field("mmd"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="out_dim"):
        init(TrainConfig(mlp=MLPConfig(out_dim=3)), y, wgfsim.Field("mmd"), np.random.default_rng(0))


def test_the_target_is_hashed_once_per_run_not_per_checkpoint(monkeypatch):
    """A record's checkpoint costs O(parameters), not O(target rows): the digest is computed at init only."""
    from wgfsim.io.snapshot import loads as snapshot_loads
    from wgfsim.methods.generator import train as gen_train

    calls = []
    real = gen_train._target_digest
    monkeypatch.setattr(gen_train, "_target_digest", lambda t: calls.append(t.shape) or real(t))
    _, y = _gaussian_target(64, seed=2)
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=2, width=8, depth=1), batch_size=16)
    state = init(cfg, y, wgfsim.Field("mmd"), np.random.default_rng(0))
    cks = []
    for _ in range(3):
        state, _ = step(state, cfg)
        cks.append(checkpoint(state))
    assert calls == [(64, 2)]
    # and the digest in every checkpoint is the target's (restore, which checks it, hashes once more)
    assert {snapshot_loads(ck["meta"])["target"] for ck in cks} == {real(y)}
    restore(cks[-1], cfg, y, wgfsim.Field("mmd"))
    assert len(calls) == 2
