"""handlers/services/policy.py: restart delays and the restart budget, on a controlled clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.builtins.services.policy import RestartBudget, RestartPolicy, next_delay


def test_never_always_fixed():
    assert next_delay(RestartPolicy(kind="never"), 0) is None
    assert next_delay(RestartPolicy(kind="always"), 7) == 0.0
    assert [next_delay(RestartPolicy(kind="fixed", delay=2.5), n) for n in range(3)] == [2.5, 2.5, 2.5]


def test_backoff_grows_to_its_max_without_jitter():
    policy = RestartPolicy(kind="backoff", initial=0.05, factor=2, max=0.3, jitter=0)
    assert [next_delay(policy, n) for n in range(5)] == pytest.approx([0.05, 0.1, 0.2, 0.3, 0.3])


def test_jitter_spreads_around_the_base_and_never_passes_max():
    policy = RestartPolicy(kind="backoff", initial=1, factor=2, max=3, jitter=0.5)
    assert next_delay(policy, 1, random=lambda: 0.0) == pytest.approx(1.0)   # 2 - 50%
    assert next_delay(policy, 1, random=lambda: 0.5) == pytest.approx(2.0)
    assert next_delay(policy, 1, random=lambda: 0.999999) == pytest.approx(3.0, abs=1e-5)
    assert next_delay(policy, 5, random=lambda: 0.999999) == 3.0


def test_policy_is_validated_by_field():
    with pytest.raises(ValidationError, match="factor"):
        RestartPolicy(factor=0.5)
    with pytest.raises(ValidationError, match="kind"):
        RestartPolicy(kind="sometimes")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_caps_restarts_within_the_window_and_frees_them_as_it_slides():
    clock = Clock()
    budget = RestartBudget(3, 10.0, clock)
    assert [budget.take() for _ in range(3)] == [True, True, True]
    assert budget.take() is False and budget.used == 3
    clock.now += 5
    assert budget.take() is False
    clock.now += 5  # the first three are now 10 s old
    assert budget.used == 0 and budget.take() is True


def test_budget_slides_one_restart_at_a_time_and_resets():
    clock = Clock()
    budget = RestartBudget(2, 10.0, clock)
    budget.take()
    clock.now += 6
    budget.take()
    assert budget.take() is False
    clock.now += 4  # only the first has expired
    assert budget.used == 1 and budget.take() is True and budget.take() is False
    budget.reset()
    assert budget.used == 0


def test_a_zero_cap_allows_nothing():
    assert RestartBudget(0, 1.0, Clock()).take() is False
