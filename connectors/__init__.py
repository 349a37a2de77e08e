"""Everything that talks to the outside world: model providers, servers Keel starts."""
