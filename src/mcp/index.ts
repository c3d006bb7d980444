// MCP (Model Context Protocol) clients for hearth's hosted `mcp` tool: the operator's config file,
// connections through the official SDK, and the URL guard for client-given servers.
export { deadline, type Deadline } from './deadline.ts';
export { connectMcp, resultText, type McpCallResult, type McpConnection, type McpTarget, type McpTool } from './mcp-client.ts';
export { EMPTY_MCP_CONFIG, loadMcpConfig, McpConfigError, parseMcpConfig, type McpServerSpec, type McpServersConfig, type McpStdioServer, type McpUrlServer } from './mcp-config.ts';
export { McpServers, openMcpServers, type McpLease } from './mcp-servers.ts';
export { stdioEnvironment } from './stdio-transport.ts';
export { checkClientUrl, forbiddenAddress, guardedFetch, normalUrl, RefusedUrl } from './url-guard.ts';
