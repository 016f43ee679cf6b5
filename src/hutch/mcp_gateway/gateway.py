"""The servers' tools, prompts and resources as one MCP server. A tool or prompt is named
``<prefix>__<its name>`` (the prefix: its server's name with ``/`` and other characters made ``_``, as
``config.prefix_of`` does); a resource keeps its URI and is read from the server that listed it. What the
servers offer is listed once, when they start."""

from __future__ import annotations

from typing import Any

from mcp import types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import McpError

from .backend import Backend
from .config import TOOL_SEPARATOR

NAME = "hutch-mcp-gateway"


def build_server(backends: list[Backend]) -> Server:
    """The low-level MCP server routing each request to the backend it names."""
    server: Server = Server(NAME)
    tools = {f"{b.plan.prefix}{TOOL_SEPARATOR}{tool.name}": (b, tool) for b in backends for tool in b.tools}
    prompts = {f"{b.plan.prefix}{TOOL_SEPARATOR}{p.name}": (b, p) for b in backends for p in b.prompts}
    resources = {str(r.uri): (b, r) for b in backends for r in b.resources}

    async def list_tools(_: types.ListToolsRequest) -> types.ServerResult:
        listed = [tool.model_copy(update={"name": name}) for name, (_, tool) in tools.items()]
        return types.ServerResult(types.ListToolsResult(tools=listed))

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        backend, tool = _find(tools, request.params.name, "tool")
        try:
            result = await backend.call_tool(tool.name, request.params.arguments or {})
        except Exception as error:  # the server is gone, broke the connection, or took too long
            text = str(error) or type(error).__name__
            result = types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=True)
        return types.ServerResult(result)

    server.request_handlers[types.ListToolsRequest] = list_tools
    server.request_handlers[types.CallToolRequest] = call_tool
    if prompts:

        async def list_prompts(_: types.ListPromptsRequest) -> types.ServerResult:
            listed = [prompt.model_copy(update={"name": name}) for name, (_, prompt) in prompts.items()]
            return types.ServerResult(types.ListPromptsResult(prompts=listed))

        async def get_prompt(request: types.GetPromptRequest) -> types.ServerResult:
            backend, prompt = _find(prompts, request.params.name, "prompt")
            answered = backend.get_prompt(prompt.name, request.params.arguments)
            return types.ServerResult(await _unless_gone(answered))

        server.request_handlers[types.ListPromptsRequest] = list_prompts
        server.request_handlers[types.GetPromptRequest] = get_prompt
    if resources:

        async def list_resources(_: types.ListResourcesRequest) -> types.ServerResult:
            listed = [resource for _, resource in resources.values()]
            return types.ServerResult(types.ListResourcesResult(resources=listed))

        async def read_resource(request: types.ReadResourceRequest) -> types.ServerResult:
            backend, resource = _find(resources, str(request.params.uri), "resource")
            return types.ServerResult(await _unless_gone(backend.read_resource(resource.uri)))

        server.request_handlers[types.ListResourcesRequest] = list_resources
        server.request_handlers[types.ReadResourceRequest] = read_resource
    return server


def _find(offered: dict[str, tuple[Backend, Any]], name: str, kind: str) -> tuple[Backend, Any]:
    if name not in offered:
        raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=f"no {kind} named {name!r}"))
    return offered[name]


async def _unless_gone(pending: Any) -> Any:
    """A prompt or resource read, or an MCP error saying why its server cannot answer."""
    try:
        return await pending
    except McpError:
        raise
    except Exception as error:
        raise McpError(types.ErrorData(code=types.INTERNAL_ERROR, message=str(error))) from None
