"""connexion operationIds. Handlers own the protocol rules and never import a provider."""
