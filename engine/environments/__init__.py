"""Where a server runs. Each runtime implements the protocol in `base`; the engine sees only that."""
