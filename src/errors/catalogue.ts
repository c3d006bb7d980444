// The one catalogue of hearth's errors. Every error a user can meet has a code here, an HTTP
// status, the OpenAI error `type` its SDK maps, and a message template ({0}, {1}… filled in order).
// test/errors.test.ts checks codes are unique and documented in the README's error table.
// Add new codes here (alphabetical within a section); never build ad-hoc error shapes elsewhere.

export interface ErrorDef {
  readonly status: number;
  readonly type: 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error' | 'service_unavailable';
  /** OpenAI `code` field (null when OpenAI sends none). */
  readonly openaiCode: string | null;
  readonly message: string;
}

export const ERRORS = {
  // --- checkpoints / model -----------------------------------------------------------------
  HEARTH_ERR_CHECKPOINT_NOT_FOUND: { status: 400, type: 'invalid_request_error', openaiCode: null, message: 'no checkpoint at {0}: expected a folder with config.json and *.safetensors' },
  HEARTH_ERR_CHECKPOINT_UNSUPPORTED: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}: {1}' },
  HEARTH_ERR_GGUF_NOT_FOUND: { status: 400, type: 'invalid_request_error', openaiCode: null, message: 'no GGUF model at {0}' },
  HEARTH_ERR_CHECKPOINT_CONFIG: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}: {1}' },
  HEARTH_ERR_TENSOR_MISSING: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}: tensor {1} is missing' },
  HEARTH_ERR_TENSOR_SHAPE: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}: tensor {1} has shape {2}, expected {3}' },
  HEARTH_ERR_TENSOR_DTYPE: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}: tensor {1} has dtype {2}; supported: F32, F16, BF16' },
  HEARTH_ERR_SAFETENSORS_CORRUPT: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}: {1}' },
  // --- runtime -----------------------------------------------------------------------------
  HEARTH_ERR_KV_POSITION: { status: 500, type: 'server_error', openaiCode: null, message: 'sequence {0}: step at position {1} but this stage holds {2} positions' },
  HEARTH_ERR_KV_FULL: { status: 503, type: 'service_unavailable', openaiCode: null, message: 'sequence {0} needs KV for {1} positions on layers {2}, which leaves more than this node offers ({3}); retry shorter, later, or give the node more memory (--memory)' },
  HEARTH_ERR_ENGINE: { status: 500, type: 'server_error', openaiCode: null, message: 'inference failed: {0}' },
  HEARTH_ERR_PROVIDER: { status: 400, type: 'invalid_request_error', openaiCode: null, message: 'execution provider {0} is not available: {1}' },
  // --- cluster -----------------------------------------------------------------------------
  HEARTH_ERR_BUS_CONNECT: { status: 503, type: 'service_unavailable', openaiCode: null, message: 'cannot reach the NATS server at {0}: {1}' },
  HEARTH_ERR_NATS_SERVER: { status: 500, type: 'server_error', openaiCode: null, message: 'nats-server: {0}' },
  HEARTH_ERR_STEP_TIMEOUT: { status: 504, type: 'server_error', openaiCode: null, message: 'step of sequence {0} got no answer from the cluster within {1} ms' },
  HEARTH_ERR_PLAN_CHANGED: { status: 503, type: 'service_unavailable', openaiCode: null, message: 'plan changed (epoch {0}); the sequence is replayed' },
  HEARTH_ERR_NO_PLAN: { status: 503, type: 'service_unavailable', openaiCode: 'no_capacity', message: 'no plan can serve the model: {0}' },
  HEARTH_ERR_NODE_UNAUTHORIZED: { status: 401, type: 'authentication_error', openaiCode: null, message: 'node {0} was refused: {1}' },
  HEARTH_ERR_WIRE_VERSION: { status: 400, type: 'invalid_request_error', openaiCode: null, message: 'message from {0} speaks wire version {1}; this node speaks {2}' },
  HEARTH_ERR_WEIGHTS_FETCH: { status: 502, type: 'server_error', openaiCode: null, message: 'fetching {0} from the gateway failed: {1}' },
  HEARTH_ERR_WEIGHTS_FORBIDDEN: { status: 403, type: 'invalid_request_error', openaiCode: null, message: 'node {0} may not fetch {1}: its grant covers only the tensors of layers [{2}, {3})' },
  HEARTH_ERR_SHARD_NOT_OFFERED: { status: 404, type: 'invalid_request_error', openaiCode: null, message: 'the gateway offers no prebuilt shard of {0}: {1}' },
  HEARTH_ERR_SHARD_BUILDING: { status: 503, type: 'service_unavailable', openaiCode: null, message: 'the {0} shard of {1} is being built on the gateway; retry in {2} s' },
  // --- API ---------------------------------------------------------------------------------
  HEARTH_ERR_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}' },
  HEARTH_ERR_INVALID_JSON: { status: 400, type: 'invalid_request_error', openaiCode: null, message: 'We could not parse the JSON body of your request: {0}' },
  HEARTH_ERR_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', openaiCode: null, message: 'request body is larger than {0} bytes (config limits.bodyBytes)' },
  HEARTH_ERR_CONTEXT_LENGTH: { status: 400, type: 'invalid_request_error', openaiCode: 'context_length_exceeded', message: "This model's maximum context length is {0} tokens. However, your messages resulted in {1} tokens{2}. Please reduce the length of the messages or completion." },
  HEARTH_ERR_MAX_TOKENS_CONTEXT: { status: 400, type: 'invalid_request_error', openaiCode: 'context_length_exceeded', message: "This model's maximum context length is {0} tokens. However, you requested {1} tokens ({2} in the messages, {3} in the completion). Please reduce the length of the messages or completion ('{4}')." },
  HEARTH_ERR_MAX_TOKENS_CAP: { status: 400, type: 'invalid_request_error', openaiCode: 'invalid_value', message: "Invalid '{0}': {1} is more than this server allows ({2}, set by its operator as limits.maxTokens)." },
  HEARTH_ERR_HOSTED_TOOL: { status: 400, type: 'invalid_request_error', openaiCode: null, message: "Invalid value for 'tools[{0}].type': '{1}' is a hosted tool this server does not run (its operator set server.hostedTools to refuse them; by default they are dropped with a notice)." },
  HEARTH_ERR_TOKEN_OUT_OF_VOCAB: { status: 400, type: 'invalid_request_error', openaiCode: null, message: "Token id {0} at prompt position {1} is outside this model's vocabulary (ids 0..{2}){3}." },
  HEARTH_ERR_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', openaiCode: null, message: 'Unsupported Content-Type {0}: send application/json' },
  HEARTH_ERR_MCP_FORBIDDEN: { status: 403, type: 'invalid_request_error', openaiCode: null, message: "This API key may not use the MCP server '{0}' (the operator lists the keys each configured server allows: allowedKeys in mcp.configFile)." },
  HEARTH_ERR_MCP_SERVER: { status: 424, type: 'invalid_request_error', openaiCode: null, message: "Error retrieving tool list from MCP server: '{0}': {1}" },
  HEARTH_ERR_MCP_URL_REFUSED: { status: 400, type: 'invalid_request_error', openaiCode: null, message: "Invalid '{0}': the URL {1}." },
  HEARTH_ERR_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', openaiCode: 'model_not_found', message: 'The model `{0}` does not exist. Available: {1}' },
  HEARTH_ERR_FIM_UNSUPPORTED: { status: 400, type: 'invalid_request_error', openaiCode: null, message: "Invalid value for 'suffix': fill-in-the-middle needs FIM tokens ({0}) and the tokenizer of model {1} has none." },
  HEARTH_ERR_RESPONSE_NOT_FOUND: { status: 404, type: 'invalid_request_error', openaiCode: null, message: "Response with id '{0}' not found." },
  HEARTH_ERR_RESPONSE_STORE: { status: 503, type: 'service_unavailable', openaiCode: null, message: 'The store of responses is unavailable ({0}); retry, or send the whole conversation as input.' },
  HEARTH_ERR_RESPONSE_SCHEMA: { status: 400, type: 'invalid_request_error', openaiCode: 'invalid_json_schema', message: "Invalid schema for response_format '{0}': {1}" },
  HEARTH_ERR_ROUTE_NOT_FOUND: { status: 404, type: 'invalid_request_error', openaiCode: null, message: 'Unknown request URL: {0} {1}' },
  HEARTH_ERR_UNAUTHORIZED: { status: 401, type: 'authentication_error', openaiCode: 'invalid_api_key', message: 'Incorrect or missing API key. Send Authorization: Bearer <key>' },
  HEARTH_ERR_QUEUE_FULL: { status: 429, type: 'rate_limit_error', openaiCode: 'rate_limit_exceeded', message: 'too many requests in flight ({0}); retry after {1} s' },
  HEARTH_ERR_UNPROCESSABLE: { status: 422, type: 'invalid_request_error', openaiCode: null, message: '{0}' },
  HEARTH_ERR_TOOL_SCHEMA: { status: 400, type: 'invalid_request_error', openaiCode: 'invalid_function_parameters', message: 'Invalid schema for function {0}: {1}' },
  HEARTH_ERR_INTERNAL: { status: 500, type: 'server_error', openaiCode: null, message: 'internal error: {0}' },
  // --- config / operator -------------------------------------------------------------------
  HEARTH_ERR_CONFIG: { status: 500, type: 'server_error', openaiCode: null, message: 'config: {0}' },
  HEARTH_ERR_MCP_CONFIG: { status: 500, type: 'server_error', openaiCode: null, message: 'MCP servers config (mcp.configFile): {0}' },
  HEARTH_ERR_PORT_BUSY: { status: 500, type: 'server_error', openaiCode: null, message: 'port {0} is busy{1}; use {2}' },
  HEARTH_ERR_PULL: { status: 502, type: 'server_error', openaiCode: null, message: 'pull {0}: {1}' },
  HEARTH_ERR_STARTUP: { status: 500, type: 'server_error', openaiCode: null, message: '{0}' },
  HEARTH_ERR_USAGE: { status: 400, type: 'invalid_request_error', openaiCode: null, message: '{0}' },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;
