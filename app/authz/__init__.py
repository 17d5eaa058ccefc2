"""Backstage as an OAuth 2.0 authorization server for CLI and MCP clients: clients,
consent sessions, codes, offline sessions (refresh tokens) and service callers.

Never sees a request: app.handlers.authorization speaks HTTP and maps these errors.
"""
