"""The default deadline of every outbound call (identity providers, key endpoints, the
remote catalog): one figure, so that a change of it is made once."""

OUTBOUND_TIMEOUT_SECONDS = 10.0

# auth.requestDeadline (ours): one sign-in callback or one /refresh, everything it does.
# The identity provider's and the catalog's defaults together.
REQUEST_DEADLINE_SECONDS = 20.0
