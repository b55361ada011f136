"""The audit log of access changes: who changed which permission of whom.

=============  ==============================================================
``entries``    pure builders, one per kind of entry (no database access)
``recording``  who the actor is (the request's user, or ``acting_as``) and
               ``record``, the one writer of ``AuditEntry`` rows
``receivers``  model signals: groups, memberships, model permissions and
               guardian's object grants, whatever the path (API, Django
               admin, guardian's admin pages and shortcuts, the shell)
``managers``   guardian's grant-table managers, audited on the bulk paths
               that send no signals
``middleware`` makes the request's user the actor while it is served
=============  ==============================================================

Signals, not services, on purpose: an audit log that one path forgets is not
an audit log. A service that writes in bulk (no signals) records its entries
itself with the same builders, inside ``recorded_by_caller``.
"""
