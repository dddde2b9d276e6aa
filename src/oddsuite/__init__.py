"""oddsuite."""
