// Issue 19 item 2's hostile bodies: each cost the old gateway seconds of event loop. Shared by
// test/api-hostile-bodies.test.ts and bench/hostile-health.ts (the same bodies against a gateway
// in its own process, /health timed from outside).

export interface Hostile {
  readonly name: string;
  readonly path: string;
  readonly body: string;
  /** What the 400's message must say (the limit it names). */
  readonly says: RegExp;
}

export const oneCharMessages = (n: number): { role: string; content: string }[] => Array.from({ length: n }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: 'a' }));
const nestedAnyOf = (levels: number): unknown => {
  let s: unknown = { type: 'string' };
  for (let i = 0; i < levels; i++) s = { anyOf: [s, { type: 'object', properties: { x: s }, required: ['x'] }] };
  return s;
};
export function hostileBodies(model: string): Hostile[] {
  const enum100k = { type: 'object', properties: { v: { enum: Array.from({ length: 100_000 }, (_, i) => `v${i}`) } }, required: ['v'] };
  const anyOf3000 = { anyOf: Array.from({ length: 3000 }, (_, i) => ({ type: 'object', properties: { [`k${i}`]: { type: 'string' } }, required: [`k${i}`] })) };
  const msgs = oneCharMessages(100_000);
  const chatSchema = (schema: unknown): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
  return [
    { name: 'responses: 100k-value enum (1.3 MB)', path: '/v1/responses', body: JSON.stringify({ model, input: 'hi', max_output_tokens: 4, text: { format: { type: 'json_schema', name: 'x', schema: enum100k } } }), says: /enumValues 2048/ },
    { name: 'chat: tool with a 100k-value enum', path: '/v1/chat/completions', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, tools: [{ type: 'function', function: { name: 'f', parameters: enum100k } }], tool_choice: 'required' }), says: /enumValues 2048/ },
    { name: 'chat: anyOf of 3,000 objects', path: '/v1/chat/completions', body: chatSchema(anyOf3000), says: /alternatives 256/ },
    { name: 'chat: 13 nested anyOf', path: '/v1/chat/completions', body: chatSchema(nestedAnyOf(13)), says: /limit (alternatives|nodes|depth)/ },
    { name: 'chat: 200 distinct costly patterns', path: '/v1/chat/completions', body: chatSchema({ type: 'object', properties: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`p${i}`, { type: 'string', pattern: `^(a|b)*a(a|b){10}c${i}$` }])) }), says: /limit patterns 16/ },
    { name: 'chat: 100k one-character messages', path: '/v1/chat/completions', body: JSON.stringify({ model, messages: msgs, max_tokens: 4 }), says: /limit 4096 messages/ },
    { name: 'responses: 100k one-character messages', path: '/v1/responses', body: JSON.stringify({ model, input: msgs, max_output_tokens: 4 }), says: /limit 4096 messages/ },
    { name: 'messages: 100k one-character messages', path: '/v1/messages', body: JSON.stringify({ model, messages: msgs, max_tokens: 4 }), says: /limit 4096 messages/ },
    { name: 'count_tokens: 100k one-character messages', path: '/v1/messages/count_tokens', body: JSON.stringify({ model, messages: msgs }), says: /limit 4096 messages/ },
  ];
}
