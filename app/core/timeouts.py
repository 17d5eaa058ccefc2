"""The default deadline of every outbound call (identity providers, key endpoints, the
remote catalog): one figure, so that a change of it is made once."""

OUTBOUND_TIMEOUT_SECONDS = 10.0
