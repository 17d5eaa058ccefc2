"""app-config.yaml: loading, validation, settings, the session secret."""
