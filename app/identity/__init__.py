"""Backstage identity: user tokens, signing keys, sign-in resolvers, the catalog."""
