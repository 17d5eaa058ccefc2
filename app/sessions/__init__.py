"""Server-side state of sign-in sessions: sessions ended by logout, state nonces spent."""
