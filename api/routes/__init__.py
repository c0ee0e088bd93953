"""Route blueprints, one module per area."""
