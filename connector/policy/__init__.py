"""The NCB's access policy: YAML files checked into a Policy that decides queries."""

from __future__ import annotations

from connector.policy.analysis import (
    DecisionChange,
    Explanation,
    MatrixRow,
    SkippedRule,
    diff,
    explain,
    matrix,
    peer_universe,
)
from connector.policy.compile import check_policy, check_sources, load_policy
from connector.policy.defaults import DEFAULT_POLICY_FILE, DEFAULT_POLICY_YAML
from connector.policy.diagnostics import CheckReport, Diagnostic
from connector.policy.model import (
    ANY_OTHER_PEER,
    InboundDecision,
    InboundRule,
    Notify,
    OutboundDecision,
    OutboundRule,
    Policy,
    Probing,
    ProbingAction,
    Rate,
    Release,
    Watch,
)
from connector.policy.read import PolicySource, read_sources

__all__ = [
    "ANY_OTHER_PEER",
    "DEFAULT_POLICY_FILE",
    "DEFAULT_POLICY_YAML",
    "CheckReport",
    "DecisionChange",
    "Diagnostic",
    "Explanation",
    "InboundDecision",
    "InboundRule",
    "MatrixRow",
    "Notify",
    "OutboundDecision",
    "OutboundRule",
    "Policy",
    "PolicySource",
    "Probing",
    "ProbingAction",
    "Rate",
    "Release",
    "SkippedRule",
    "Watch",
    "check_policy",
    "check_sources",
    "diff",
    "explain",
    "load_policy",
    "matrix",
    "peer_universe",
    "read_sources",
]
