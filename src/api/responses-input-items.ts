import { HearthError } from '../errors/index.ts';

// GET /v1/responses/{id}/input_items: the input items a stored response was generated from (the
// whole conversation, earlier turns of a previous_response_id chain included), as OpenAI's list
// object {object: 'list', data, first_id, last_id, has_more}. Pure: the route finds the stored
// response (its owner's only) and hands its items here.
// Query per https://platform.openai.com/docs/api-reference/responses/input-items: limit 1–100
// (default 20), order asc|desc (default desc), after / before an item id.

export interface InputItemsQuery {
  readonly limit?: unknown;
  readonly order?: unknown;
  readonly after?: unknown;
  readonly before?: unknown;
}

const PREFIX: Readonly<Record<string, string>> = { message: 'msg', function_call: 'fc', function_call_output: 'fco', reasoning: 'rs' };

/** Items as OpenAI lists them: each with a type and an id (a client's own id, or a stable one made
 *  from the response id and the item's place), message text as content parts. */
export function listedItems(responseId: string, items: readonly unknown[]): Record<string, unknown>[] {
  const tail = responseId.replace(/^resp_/, '');
  return items.map((raw, i) => {
    const item = { ...(raw as Record<string, unknown>) };
    const type = typeof item['type'] === 'string' ? item['type'] : 'message';
    const id = typeof item['id'] === 'string' ? item['id'] : `${PREFIX[type] ?? 'item'}_${tail}_${i}`;
    if (type === 'message' && typeof item['content'] === 'string') {
      item['content'] = [{ type: item['role'] === 'assistant' ? 'output_text' : 'input_text', text: item['content'] }];
    }
    return { ...item, type, id };
  });
}

function bad(message: string, param: string): HearthError {
  return new HearthError('HEARTH_ERR_INVALID_REQUEST', [message], { param });
}

export function listInputItems(responseId: string, items: readonly unknown[], q: InputItemsQuery): Record<string, unknown> {
  const limit = q.limit === undefined ? 20 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw bad("Invalid 'limit': expected an integer between 1 and 100.", 'limit');
  const order = q.order ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw bad("Invalid 'order': expected 'asc' or 'desc'.", 'order');
  let list = listedItems(responseId, items);
  if (order === 'desc') list.reverse();
  for (const [name, cursor] of [['after', q.after], ['before', q.before]] as const) {
    if (cursor === undefined) continue;
    const at = typeof cursor === 'string' ? list.findIndex((x) => x['id'] === cursor) : -1;
    if (at < 0) throw bad(`Invalid '${name}': no input item with that id in response '${responseId}'.`, name);
    list = name === 'after' ? list.slice(at + 1) : list.slice(0, at);
  }
  const data = list.slice(0, limit);
  return { object: 'list', data, first_id: data[0]?.['id'] ?? null, last_id: data.at(-1)?.['id'] ?? null, has_more: list.length > data.length };
}
