"""The default policy file that `ncb-connector init` writes: commented, and denying everything."""

from __future__ import annotations

__all__ = ["DEFAULT_POLICY_FILE", "DEFAULT_POLICY_YAML"]

DEFAULT_POLICY_FILE = "00-default.yaml"

DEFAULT_POLICY_YAML = """\
# ncb-connector access policy: the default, which denies everything.
#
# Every *.yaml file in this directory is read, in name order, as ONE policy.
# `ncb-connector policy check` shows every error with file, line and rule name;
# a policy that fails to check never replaces the one that is running.
# The whole language is in docs/policies.md; policies/example-schengen.yaml shows
# every feature with comments.

# Named lists of node ids, shared by every file: refer to one as group:NAME.
groups: {}
#  schengen: [AT, BE, CH, CZ, DE, DK, EE, ES, FI, FR, GR, HR, HU, IS, IT, LI,
#             LT, LU, LV, MT, NL, NO, PL, PT, SE, SI, SK]

# What peers may see of our records. The first rule that matches a check decides;
# when none matches, the check is denied. With no rule, every check is denied.
inbound: []
#  - name: stolen documents, hit/no-hit for everyone
#    from: "*"
#    categories: [travel_documents]
#    answer: hit                  # none | hit | summary | full

# What our national agencies may ask abroad. With no rule, nothing may be asked.
outbound: []
#  - agency: border-police
#    categories: [travel_documents, wanted_persons, vehicles]
#    to: "*"

# Records, categories or peers to be told about whenever a peer asks.
watch: []
#  - record: wanted_persons/FR-2025-000123
#    notify: [duty-officer]
"""
