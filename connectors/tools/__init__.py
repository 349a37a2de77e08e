"""Tool clients: the ``ToolClient`` port (streams/core/ports/tools.py) for the business systems agents
call, one per connector file (streams/core/connectors.py). ``http`` speaks to an HTTP API with its
declared operations, ``mcp`` to an MCP server; ``auth`` holds the credentials both send. Imports the
core vocabulary of streams only."""
