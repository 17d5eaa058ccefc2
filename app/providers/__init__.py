"""Identity providers: each talks to its service and never sees a request object."""
