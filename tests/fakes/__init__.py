"""Shared test fakes: fake identity provider, fake clock, stub provider."""
