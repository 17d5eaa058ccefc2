"""backstage-auth-backend: a spec-first, drop-in replacement for Backstage's auth backend."""
