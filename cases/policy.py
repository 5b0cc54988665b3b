"""The compliance limits the case-work services need, without importing ``notifications``.

The editable policy (``notifications.CompliancePolicy``) lives in an app that builds on
``cases``; the arrows point inwards, so ``notifications`` registers a provider here at
start-up (its ``AppConfig.ready``) and ``cases`` asks for the values through
:func:`case_policy`. With no provider registered (``cases`` used on its own, or a
test that unregisters it) the CONTRACT section 6 defaults apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CasePolicy:
    # Days after a promised date before the promise counts as broken (the pause lasts as long).
    promise_grace_days: int = 1
    # Phone calls logged by collectors: attempts per case in a rolling 7 days...
    call_attempts_per_week: int = 7
    # ...and connected calls per case per day (the borrower's calendar day).
    connected_calls_per_day: int = 3


DEFAULT_CASE_POLICY = CasePolicy()

CasePolicyProvider = Callable[[], CasePolicy]
_provider: CasePolicyProvider | None = None


def register_case_policy_provider(fn: CasePolicyProvider | None) -> None:
    """Install the function that returns the current policy (``None`` removes it).

    One provider at a time: the policy has one owner, and a second registration (e.g. a
    test's) replaces the first rather than competing with it.
    """
    global _provider
    _provider = fn


def case_policy_provider() -> CasePolicyProvider | None:
    return _provider


def case_policy() -> CasePolicy:
    """The policy in force now: the registered provider's answer, else the defaults.

    Read on every call, never cached in the process, so an admin's edit applies at once on
    every web process and worker.
    """
    if _provider is None:
        return DEFAULT_CASE_POLICY
    return _provider()
