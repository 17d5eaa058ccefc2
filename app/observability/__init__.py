"""Logs, metrics and audit events; imports nothing from app."""
