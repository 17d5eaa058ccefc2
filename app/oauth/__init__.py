"""Wire formats of Backstage's OAuth flow, independent of any provider."""
