"""Hand-computed checks of the pure reward-learning losses."""

import math

import numpy as np
import pytest
import torch

from pbrl.rewards.losses import bradley_terry_loss, gaussian_kl_standard_normal, preference_accuracy
from pbrl.types import PbrlError


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_bt_first_preferred_matches_hand_value():
    # R1=2, R2=0, p=1: -log sigmoid(2) = log(1 + e^-2)
    loss = bradley_terry_loss(t(2.0), t(0.0), t(1.0))
    assert loss.item() == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-6)


def test_bt_second_preferred_and_tie():
    # p=0: -log sigmoid(R2 - R1) = log(1 + e^2)
    assert bradley_terry_loss(t(2.0), t(0.0), t(0.0)).item() == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-6)
    # p=0.5 with equal returns: log 2; with R1-R2=2: 0.5*log(1+e^-2) + 0.5*log(1+e^2)
    assert bradley_terry_loss(t(1.0), t(1.0), t(0.5)).item() == pytest.approx(math.log(2.0), rel=1e-6)
    expected = 0.5 * math.log1p(math.exp(-2.0)) + 0.5 * math.log1p(math.exp(2.0))
    assert bradley_terry_loss(t(2.0), t(0.0), t(0.5)).item() == pytest.approx(expected, rel=1e-6)


def test_bt_weighted_mean():
    l1, l2 = math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0))
    loss = bradley_terry_loss(t(2.0, 2.0), t(0.0, 0.0), t(1.0, 0.0), weight=t(3.0, 1.0))
    assert loss.item() == pytest.approx((3 * l1 + 1 * l2) / 4, rel=1e-6)


def test_bt_is_symmetric_under_swap():
    r1, r2, p = t(0.3, -1.0, 4.0), t(1.5, 2.0, -3.0), t(1.0, 0.5, 0.0)
    assert bradley_terry_loss(r1, r2, p).item() == pytest.approx(bradley_terry_loss(r2, r1, 1 - p).item())


def test_bt_stable_for_large_gaps():
    loss = bradley_terry_loss(t(1000.0), t(0.0), t(0.0))
    assert loss.item() == pytest.approx(1000.0, rel=1e-6)
    assert bradley_terry_loss(t(1000.0), t(0.0), t(1.0)).item() == pytest.approx(0.0, abs=1e-6)


def test_bt_member_axis_averages_per_member_weighted_means():
    r1 = torch.tensor([[2.0, 2.0], [0.0, 0.0]])
    r2 = torch.zeros(2, 2)
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    w = torch.tensor([[1.0, 1.0], [1.0, 3.0]])
    per_member = [
        (math.log1p(math.exp(-2)) + math.log1p(math.exp(2))) / 2,
        math.log(2.0),
    ]
    assert bradley_terry_loss(r1, r2, p, w).item() == pytest.approx(np.mean(per_member), rel=1e-6)


def test_bt_gradient_pushes_preferred_return_up():
    r1 = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(r1, torch.tensor([0.0]), t(1.0)).backward()
    assert r1.grad.item() == pytest.approx(-0.5)  # d/dR1 of -log sigmoid(R1 - R2) at 0


def test_noisy_bt_matches_hand_value_and_zero_noise_is_plain_bt():
    # eps = 0.2, R1 - R2 = 1, p = 1: -log(0.1 + 0.8 sigmoid(1)); p = 0.5 mixes both directions
    s = 1.0 / (1.0 + math.exp(-1.0))
    first, second = -math.log(0.1 + 0.8 * s), -math.log(0.1 + 0.8 * (1 - s))
    assert bradley_terry_loss(t(1.0), t(0.0), t(1.0), label_noise=0.2).item() == pytest.approx(first, rel=1e-5)
    assert bradley_terry_loss(t(1.0), t(0.0), t(0.5), label_noise=0.2).item() == pytest.approx(
        0.5 * (first + second), rel=1e-5)
    r1, r2, p = t(0.3, -1.0, 4.0), t(1.5, 2.0, -3.0), t(1.0, 0.5, 0.0)
    assert bradley_terry_loss(r1, r2, p, label_noise=0.0).item() == bradley_terry_loss(r1, r2, p).item()


def test_noisy_bt_caps_the_cost_and_pull_of_a_contradicted_label():
    """A wrong label against a confident model costs at most -log(eps / 2), and its gradient vanishes."""
    r1 = torch.tensor([-40.0], requires_grad=True)
    loss = bradley_terry_loss(r1, t(0.0), t(1.0), label_noise=0.1)
    loss.backward()
    assert loss.item() == pytest.approx(-math.log(0.05), rel=1e-4)
    assert abs(r1.grad.item()) < 1e-6
    r1.grad = None
    bradley_terry_loss(r1, t(0.0), t(1.0)).backward()  # plain BT keeps pulling with full force
    assert r1.grad.item() == pytest.approx(-1.0, rel=1e-6)


@pytest.mark.parametrize("eps", [-0.1, 1.0, float("nan")])
def test_noisy_bt_rejects_shares_outside_unit_interval(eps):
    with pytest.raises(PbrlError, match=r"label_noise: expected a share of random answers in \[0, 1\)"):
        bradley_terry_loss(t(1.0), t(0.0), t(1.0), label_noise=eps)


def test_preference_accuracy_hand_values():
    r1 = np.array([2.0, 0.0, 1.0, 5.0, 1.0])
    r2 = np.array([1.0, 1.0, 3.0, 0.0, 1.0])
    p = np.array([1.0, 0.0, 1.0, 0.5, 1.0])  # right, right, wrong, (tie ignored), predicted tie = wrong
    assert preference_accuracy(r1, r2, p) == pytest.approx(2 / 4)
    assert math.isnan(preference_accuracy(r1, r2, np.full(5, 0.5)))


def test_preference_accuracy_accepts_tensors_and_soft_labels():
    assert preference_accuracy(t(1.0, 0.0), t(0.0, 1.0), t(0.8, 0.3)) == 1.0


def test_gaussian_kl_hand_values():
    mu = torch.tensor([0.0, 1.0, 0.0, 2.0])
    log_std = torch.tensor([0.0, 0.0, math.log(2.0), math.log(0.5)])
    expected = [
        0.0,  # N(0,1) vs itself
        0.5,  # 0.5 * mu^2
        0.5 * (4 + 0 - 1) - math.log(2.0),  # sigma = 2
        0.5 * (0.25 + 4 - 1) - math.log(0.5),  # sigma = 0.5, mu = 2
    ]
    np.testing.assert_allclose(gaussian_kl_standard_normal(mu, log_std).numpy(), expected, rtol=1e-6)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, log_std = torch.randn(50, generator=g), torch.randn(50, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, log_std.exp()), torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(gaussian_kl_standard_normal(mu, log_std), ref)
    assert (gaussian_kl_standard_normal(mu, log_std) >= 0).all()
