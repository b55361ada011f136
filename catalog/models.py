"""Products arrive with the catalog issue; the app is registered (TENANT only) from the start."""
