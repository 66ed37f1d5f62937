"""Pull activity: what the registry's own logs and notifications say was used."""
