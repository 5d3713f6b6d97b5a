"""IronForge NB."""
