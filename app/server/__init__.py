"""Process start-up and connexion assembly: the top layer, which wires everything."""
