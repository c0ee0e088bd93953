"""Route blueprints, one module per area."""


def audit_routes() -> list:
    """The audit blueprint, when its module is present."""
    try:
        from api.routes.audit import bp
    except ImportError:
        return []
    return [bp]
