"""The MCP gateway inside ``mcp-gateway`` sandboxes: the configured MCP servers, each a stdio process,
served as one MCP server over streamable HTTP on port 50005 (``Sandbox.create(mcp=...)``,
``get_mcp_url()``)."""
