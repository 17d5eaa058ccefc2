"""Refresh coordination: one upstream refresh per session, in process or across instances."""
