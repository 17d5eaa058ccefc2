"""ASGI middleware around the connexion app: CORS, edge limits, metrics."""
