"""Releases that wait for a person: held answers, operators' decisions, fetched releases.

A policy rule with `release: approval` answers a peer at once at level `hit` with an
approval id; what its level (`summary`, `full`) shows leaves only once an operator approves.
`service.Approvals` is the one way to list, show, approve, deny and expire them (the
`approvals` commands and the operator console both call it); `tables` holds both sides'
rows in the enquiry log's database, `model` the values.
"""
