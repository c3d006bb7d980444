// hearth status page. Plain ES module, no build step, no dependencies.
// - polls GET /v1/cluster every second and draws each device as a row: its layer range along the
//   model's layers, memory used/free, state, live tokens/s;
// - a chat box streaming from POST /v1/chat/completions (SSE read with fetch + ReadableStream,
//   since EventSource cannot POST or send an Authorization header).
// Everything from the server is written with textContent, never innerHTML: node names and model
// output are untrusted text.

const POLL_MS = 1000;
const KEY_STORE = 'hearth.apiKey';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const state = {
  apiKey: localStorage.getItem(KEY_STORE) ?? '',
  modelId: null,
  /** @type {{role: string, content: string}[]} */
  history: [],
  /** @type {AbortController | null} */
  inflight: null,
};

function headers(extra = {}) {
  const h = { ...extra };
  if (state.apiKey !== '') h.authorization = `Bearer ${state.apiKey}`;
  return h;
}

function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Text of a value the server relayed from a node (issue 19): only strings and finite numbers
 *  are shown; anything else (an object such as {toString: null}, which String() cannot convert)
 *  becomes the fallback, so one odd field cannot break the page or its badge. */
function txt(v, fallback = '–') {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return fallback;
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function fmtNum(n, digits = 1) {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(digits) : '–';
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setConn(kind, text) {
  const c = $('conn');
  c.dataset.state = kind;
  c.textContent = text;
}

function needKey(message) {
  const f = $('key-form');
  f.hidden = false;
  setConn('auth', message);
}

// ---------------------------------------------------------------- cluster picture

function renderCluster(body) {
  const model = body.model ?? {};
  const numLayers = Number.isInteger(model.numLayers) && model.numLayers > 0 ? model.numLayers : null;
  const nodes = (Array.isArray(body.nodes) ? body.nodes : []).filter((n) => typeof n === 'object' && n !== null);
  if (typeof model.id === 'string') state.modelId = model.id;
  $('model-id').textContent = txt(model.id);
  $('model-layers').textContent = txt(numLayers);
  $('epoch').textContent = txt(body.epoch);
  $('node-count').textContent = String(nodes.length);
  // Tokens the gateway emitted over the last seconds (cluster/figures.ts). Not the sum of the
  // nodes' rates: those count prompt positions and every stage, so they read 50× too high.
  const emitted = body.forecast?.emittedTokS;
  $('total-toks').textContent = typeof emitted === 'number' ? fmtNum(emitted) : '–';
  $('axis-end').textContent = numLayers === null ? '' : `layer ${numLayers - 1}`;
  // The model's own notice (the demo says its text is random) stays in view above everything.
  const notice = $('model-notice');
  notice.hidden = typeof model.notice !== 'string' || model.notice === '';
  if (!notice.hidden && notice.textContent !== model.notice) notice.textContent = model.notice;
  const serving = nodes.filter((n) => n.state !== 'lost');
  $('no-nodes').hidden = serving.length > 0;
  $('no-nodes-text').textContent = nodes.length > 0
    ? 'No worker is connected now (every worker has left or was lost), so nothing can answer.'
    : 'No worker has joined yet, so nothing can answer.';
  const join = body.join ?? null;
  renderConnect(typeof model.id === 'string' ? model.id : null, join !== null && typeof join.command === 'string' ? join.command : null);
  $('join-help').hidden = join === null || typeof join.command !== 'string';
  if (join !== null && typeof join.command === 'string') $('join-cmd').textContent = join.command;
  $('join-note').hidden = join === null || typeof join.note !== 'string';
  if (join !== null && typeof join.note === 'string') $('join-note').textContent = join.note;
  // Why the cluster cannot serve (e.g. not enough memory for the model yet), in the coordinator's words.
  const planState = $('plan-state');
  const down = body.live === false;
  planState.hidden = !down;
  planState.textContent = down ? `No plan can serve the model${typeof body.error === 'string' && body.error !== '' ? `: ${body.error}` : ' yet'}.` : '';
  // The planner's prediction for the running plan, and what one stream measured on it since.
  const fc = body.forecast ?? null;
  const forecast = $('plan-forecast');
  forecast.hidden = fc === null || typeof fc.predictedTokS !== 'number';
  if (!forecast.hidden) {
    // The gateway's own sentence: `hearth status` and `hearth doctor` print the same one.
    const measured = typeof fc.measuredTokS === 'number' ? `, measured ${fmtNum(fc.measuredTokS)}` : ', not measured yet';
    const text = typeof fc.summary === 'string' ? `Plan (${txt(fc.objective, 'fastest')}): ${fc.summary}.`
      : `Plan predicts ${fmtNum(fc.predictedTokS)} tok/s for one stream${measured} (${txt(fc.objective, 'fastest')} plan).`;
    if (forecast.textContent !== text) forecast.textContent = text;
  }

  // Rows are keyed by node id and updated in place: replacing them every second would flicker,
  // lose text selection and detach elements someone is inspecting.
  const list = $('nodes');
  const keep = new Set();
  nodes.forEach((n, i) => {
    const id = txt(n.id, `#${i}`);
    keep.add(id);
    let li = rows.get(id);
    if (li === undefined) {
      li = createRow(id);
      rows.set(id, li);
    }
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
    // One node's odd fields must not stop the others (or the badge) from being drawn.
    try {
      updateRow(li, n, numLayers);
    } catch {
      setText(li, '.node-name', id);
    }
  });
  for (const [id, li] of rows) {
    if (!keep.has(id)) {
      li.remove();
      rows.delete(id);
    }
  }
}

/** @type {Map<string, HTMLLIElement>} */
const rows = new Map();

/** The base URL, a request to copy and the join line: always shown, with or without workers. */
function renderConnect(modelId, joinCommand) {
  const base = `${location.origin}/v1`;
  setText(document, '#base-url', base);
  const auth = state.apiKey !== '' || $('key-form').hidden === false ? ' -H "Authorization: Bearer $HEARTH_API_KEY"' : '';
  const body = JSON.stringify({ model: modelId ?? 'MODEL', messages: [{ role: 'user', content: 'Hello!' }] });
  setText(document, '#curl-cmd', `curl ${base}/chat/completions${auth} -H "Content-Type: application/json" -d '${body}'`);
  $('join-line').hidden = joinCommand === null;
  if (joinCommand !== null) setText(document, '#join-line-cmd', joinCommand);
}

document.addEventListener('click', (ev) => {
  const b = /** @type {HTMLElement | null} */ (ev.target instanceof HTMLElement ? ev.target.closest('button[data-copy]') : null);
  if (b === null) return;
  const text = $(b.dataset.copy ?? '').textContent ?? '';
  const done = () => { b.textContent = 'Copied'; setTimeout(() => { b.textContent = 'Copy'; }, 1500); };
  // The clipboard API needs a secure context (https or localhost); elsewhere select the text.
  if (navigator.clipboard !== undefined) navigator.clipboard.writeText(text).then(done, () => selectText(b.dataset.copy ?? ''));
  else selectText(b.dataset.copy ?? '');
});

function selectText(id) {
  const r = document.createRange();
  r.selectNodeContents($(id));
  const sel = window.getSelection();
  sel?.removeAllRanges();
  sel?.addRange(r);
}

function createRow(id) {
  const li = /** @type {HTMLLIElement} */ (el('li', 'node'));
  li.dataset.nodeId = id;
  const head = el('div', 'node-head');
  const here = el('span', 'here');
  here.textContent = 'this machine';
  here.hidden = true;
  head.append(el('span', 'node-name'), here, el('span', 'badge'), el('span', 'node-facts'), el('span', 'node-toks'));
  const track = el('div', 'layer-track');
  track.append(el('div', 'layer-range'));
  const memBar = el('div', 'mem-bar');
  memBar.append(el('div', 'mem-used'), el('div', 'mem-kv'));
  li.append(head, track, el('span', 'range-text'), memBar, el('span', 'mem-text'), el('span', 'idle-reason'), el('span', 'use-when'));
  return li;
}

function setText(root, sel, text) {
  const e = /** @type {HTMLElement} */ (root.querySelector(sel));
  if (e.textContent !== text) e.textContent = text;
  return e;
}

function updateRow(li, n, numLayers) {
  const st = txt(n.state, 'unknown');
  li.dataset.state = st;
  setText(li, '.node-name', txt(n.name, txt(n.id, '?')));
  setText(li, '.badge', st).className = `badge state-${st.replace(/[^a-z0-9-]/gi, '')}`;
  const parts = [];
  if (typeof n.provider === 'string') parts.push(n.provider);
  if (num(n.threads) !== null) parts.push(`${n.threads} thread${n.threads === 1 ? "" : "s"}`);
  if (typeof n.speed === 'number') parts.push(`speed ${fmtNum(n.speed, 2)}`);
  if (typeof n.msPerLayer === 'number') parts.push(`${fmtNum(n.msPerLayer, 2)} ms/layer${n.speedBasis === 'measured' ? '' : ' (probe)'}`);
  if (typeof n.linkMs === 'number') parts.push(`link ${fmtNum(n.linkMs, 2)} ms`);
  // Dropped for bad work (a failed spot check): say why, where the node is shown.
  if (typeof n.distrusted === 'object' && n.distrusted !== null && typeof n.distrusted.reason === 'string') parts.push(`dropped: ${n.distrusted.reason}`);
  setText(li, '.node-facts', parts.join(' · '));
  const idle = setText(li, '.idle-reason', typeof n.idleReason === 'string' ? n.idleReason : '');
  idle.hidden = typeof n.idleReason !== 'string';
  /** @type {HTMLElement} */ (li.querySelector('.here')).hidden = n.here !== true;
  const use = setText(li, '.use-when', typeof n.useWhen === 'string' ? `What would make the cluster use it: ${n.useWhen}.` : '');
  use.hidden = typeof n.useWhen !== 'string';
  setText(li, '.node-toks', `${fmtNum(n.tokS)} tok/s`);

  // The layer track: the whole model from layer 0 to numLayers-1, this node's [start, end) filled.
  const track = /** @type {HTMLElement} */ (li.querySelector('.layer-track'));
  const bar = /** @type {HTMLElement} */ (li.querySelector('.layer-range'));
  if (numLayers !== null) track.style.setProperty('--layers', String(numLayers));
  const range = Array.isArray(n.range) && n.range.length === 2 && num(n.range[0]) !== null && num(n.range[1]) !== null ? n.range : null;
  bar.hidden = range === null || numLayers === null;
  if (range !== null && numLayers !== null) {
    const [a, b] = range;
    bar.style.left = `${(100 * a) / numLayers}%`;
    bar.style.width = `${(100 * Math.max(0, b - a)) / numLayers}%`;
    bar.title = `layers ${a}–${b - 1}`;
  }
  setText(li, '.range-text', range === null ? 'no layers assigned' : `layers ${range[0]}–${range[1] - 1} (${range[1] - range[0]})`);

  // Memory, all within what the node offered to the cluster: weights held + KV in use + free.
  const mem = typeof n.memory === 'object' && n.memory !== null ? n.memory : {};
  const usedSeg = /** @type {HTMLElement} */ (li.querySelector('.mem-used'));
  const kvSeg = /** @type {HTMLElement} */ (li.querySelector('.mem-kv'));
  const offered = num(mem.offered) ?? num(mem.total);
  let memText = 'memory unknown';
  if (offered !== null && offered > 0) {
    const weights = Math.max(0, num(mem.weights) ?? 0);
    const kv = Math.max(0, num(mem.kvBytes) ?? 0);
    const free = num(mem.free) !== null ? Math.max(0, mem.free) : Math.max(0, offered - weights - kv);
    usedSeg.style.width = `${Math.min(100, (100 * weights) / offered)}%`;
    kvSeg.style.width = `${Math.min(100, (100 * kv) / offered)}%`;
    memText = `${fmtBytes(weights)} weights + ${fmtBytes(kv)} KV · ${fmtBytes(free)} free of ${fmtBytes(offered)} offered`;
  } else {
    usedSeg.style.width = '0';
    kvSeg.style.width = '0';
  }
  setText(li, '.mem-text', memText);
}

async function poll() {
  try {
    const res = await fetch('/v1/cluster', { headers: headers(), cache: 'no-store' });
    if (res.status === 401) {
      needKey(state.apiKey === '' ? 'API key needed' : 'API key refused');
    } else if (!res.ok) {
      setConn('error', `cluster: HTTP ${res.status}`);
    } else {
      const body = await res.json();
      renderCluster(body);
      // The badge tells whether a request would be answered now, not merely that the page loads.
      const workers = (Array.isArray(body.nodes) ? body.nodes : []).filter((n) => typeof n === 'object' && n !== null && n.state !== 'lost').length;
      if (body.live === true) setConn('ok', 'serving');
      else if (workers === 0) setConn('warn', 'no workers');
      else setConn('warn', 'not ready');
    }
  } catch {
    setConn('error', 'gateway unreachable');
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// ---------------------------------------------------------------- chat

function addMessage(role, text) {
  const li = el('li', `msg ${role}`);
  li.append(el('span', 'role', role), el('div', 'content', text));
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
  return /** @type {HTMLElement} */ (li.querySelector('.content'));
}

async function resolveModel() {
  if (state.modelId !== null) return state.modelId;
  const res = await fetch('/v1/models', { headers: headers() });
  if (res.ok) {
    const body = await res.json();
    const id = body?.data?.[0]?.id;
    if (typeof id === 'string') state.modelId = id;
  }
  return state.modelId ?? 'default';
}

/** Splits an SSE byte stream into `data:` payloads (https://html.spec.whatwg.org/#event-stream-interpretation). */
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) yield data.join('\n');
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
  }
  if (data.length > 0) yield data.join('\n');
}

function errorText(err) {
  return `error: ${err?.message ?? JSON.stringify(err)}${err?.code ? ` (${err.code})` : ''}`;
}

// ------------------------------------------------ chat with MCP tools (issue 26)
// With a server chosen under "tools", the chat box asks POST /v1/responses with a hosted mcp tool
// naming that configured server: hearth lists its tools, runs the model's calls and feeds the
// results back; each call and its result is drawn as its own row (textContent only: a tool's
// output is untrusted text). Calls run without an approval prompt: the server is one the operator
// configured for this key.

async function loadMcpServers() {
  const select = /** @type {HTMLSelectElement} */ ($('mcp-server'));
  const res = await fetch('/v1/mcp/servers', { headers: headers() }).catch(() => null);
  if (res === null || !res.ok) return;
  const body = await res.json().catch(() => null);
  const keep = select.value;
  select.replaceChildren(el('option', '', 'none'));
  /** @type {HTMLOptionElement} */ (select.firstChild).value = '';
  for (const s of body?.data ?? []) {
    if (typeof s?.server_label !== 'string') continue;
    const o = /** @type {HTMLOptionElement} */ (el('option', '', `${s.server_label} (${s.transport})`));
    o.value = s.server_label;
    select.append(o);
  }
  select.value = [...select.options].some((o) => o.value === keep) ? keep : '';
}

/** One row per MCP call: "label.tool(arguments)", then its output or error. */
function addToolCall(item) {
  const content = addMessage('tool', `${item.server_label}.${item.name}(${item.arguments ?? ''})`);
  const result = el('span', 'result', 'running…');
  content.append(result);
  return { content, result, li: /** @type {HTMLElement} */ (content.parentElement) };
}

async function sendWithTools(text, label, force) {
  const status = $('chat-status');
  state.history.push({ role: 'user', content: text });
  addMessage('user', text);
  const ctrl = new AbortController();
  state.inflight = ctrl;
  $('send').toggleAttribute('disabled', true);
  $('stop').toggleAttribute('disabled', false);
  status.textContent = `asking ${label} for its tools…`;
  let out = null;
  let reply = '';
  const calls = new Map();
  try {
    const maxTokens = Number(/** @type {HTMLInputElement} */ ($('max-tokens')).value) || undefined;
    const temperature = Number(/** @type {HTMLInputElement} */ ($('temperature')).value);
    const res = await fetch('/v1/responses', {
      method: 'POST',
      headers: headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
      body: JSON.stringify({
        model: await resolveModel(),
        input: state.history,
        tools: [{ type: 'mcp', server_label: label, require_approval: 'never' }],
        tool_choice: force ? { type: 'mcp', server_label: label } : 'auto',
        stream: true,
        store: false,
        ...(maxTokens ? { max_output_tokens: maxTokens } : {}),
        ...(Number.isFinite(temperature) ? { temperature } : {}),
      }),
      signal: ctrl.signal,
    });
    if (res.status === 401) needKey('API key needed for chat');
    if (!res.ok || res.body === null) {
      const body = await res.json().catch(() => null);
      throw Object.assign(new Error(body?.error?.message ?? `HTTP ${res.status}`), { code: body?.error?.code });
    }
    for await (const data of sseData(res.body)) {
      const e = JSON.parse(data);
      if (e.type === 'error') throw Object.assign(new Error(e.message), { code: e.code });
      if (e.type === 'response.mcp_list_tools.completed') status.textContent = `${label}: tools listed`;
      if (e.type === 'response.output_item.added' && e.item?.type === 'mcp_call') {
        calls.set(e.output_index, addToolCall(e.item));
        status.textContent = `calling ${e.item.name}…`;
      }
      if (e.type === 'response.mcp_call_arguments.done') {
        const c = calls.get(e.output_index);
        if (c) c.content.firstChild.textContent = c.content.firstChild.textContent.replace(/\(.*\)$/s, `(${e.arguments})`);
      }
      if (e.type === 'response.output_item.done' && e.item?.type === 'mcp_call') {
        const c = calls.get(e.output_index);
        if (c) {
          c.result.textContent = e.item.error ? `error: ${e.item.error}` : `→ ${e.item.output ?? ''}`;
          if (e.item.error) c.li.classList.add('failed');
        }
      }
      if (e.type === 'response.output_text.delta') {
        if (out === null) {
          out = addMessage('assistant', '');
          out.parentElement?.classList.add('streaming');
        }
        reply += e.delta;
        out.textContent = reply;
      }
      if (e.type === 'response.completed' || e.type === 'response.incomplete') {
        const u = e.response?.usage;
        status.textContent = `done: ${calls.size} tool call${calls.size === 1 ? '' : 's'}${u ? `, ${u.output_tokens} tokens` : ''}`;
      }
    }
    state.history.push({ role: 'assistant', content: reply });
  } catch (e) {
    const aborted = e instanceof DOMException && e.name === 'AbortError';
    if (reply !== '') state.history.push({ role: 'assistant', content: reply });
    else state.history.pop();
    status.textContent = aborted ? 'stopped' : errorText(e);
  } finally {
    out?.parentElement?.classList.remove('streaming');
    state.inflight = null;
    $('send').toggleAttribute('disabled', false);
    $('stop').toggleAttribute('disabled', true);
  }
}

async function send(text) {
  const mcpLabel = /** @type {HTMLSelectElement} */ ($('mcp-server')).value;
  if (mcpLabel !== '') return sendWithTools(text, mcpLabel, /** @type {HTMLInputElement} */ ($('mcp-force')).checked);
  const status = $('chat-status');
  state.history.push({ role: 'user', content: text });
  addMessage('user', text);
  const out = addMessage('assistant', '');
  out.parentElement?.classList.add('streaming');
  const ctrl = new AbortController();
  state.inflight = ctrl;
  $('send').toggleAttribute('disabled', true);
  $('stop').toggleAttribute('disabled', false);
  status.textContent = 'waiting for the first token…';
  const started = performance.now();
  let firstAt = null;
  let reply = '';
  let chunks = 0;
  let usage = null;
  try {
    const maxTokens = Number(/** @type {HTMLInputElement} */ ($('max-tokens')).value) || undefined;
    const temperature = Number(/** @type {HTMLInputElement} */ ($('temperature')).value);
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
      body: JSON.stringify({
        model: await resolveModel(),
        messages: state.history,
        stream: true,
        stream_options: { include_usage: true },
        ...(maxTokens ? { max_tokens: maxTokens } : {}),
        ...(Number.isFinite(temperature) ? { temperature } : {}),
      }),
      signal: ctrl.signal,
    });
    if (res.status === 401) needKey('API key needed for chat');
    if (!res.ok || res.body === null) {
      const body = await res.json().catch(() => null);
      throw Object.assign(new Error(body?.error?.message ?? `HTTP ${res.status}`), { code: body?.error?.code });
    }
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      // A failure after the stream started arrives as a data event with OpenAI's error shape.
      if (chunk.error) throw Object.assign(new Error(chunk.error.message), { code: chunk.error.code });
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta;
      const piece = delta?.content ?? '';
      if (piece !== '') {
        if (firstAt === null) firstAt = performance.now();
        reply += piece;
        chunks++;
        out.textContent = reply;
        status.textContent = `streaming… ${chunks} chunks`;
      }
    }
    state.history.push({ role: 'assistant', content: reply });
    const secs = (performance.now() - (firstAt ?? started)) / 1000;
    const n = usage?.completion_tokens ?? chunks;
    status.textContent = `done: ${n} tokens, first token after ${(((firstAt ?? performance.now()) - started) / 1000).toFixed(2)} s, ${secs > 0 ? (n / secs).toFixed(1) : '–'} tok/s`;
  } catch (e) {
    const aborted = e instanceof DOMException && e.name === 'AbortError';
    if (reply !== '') state.history.push({ role: 'assistant', content: reply });
    else state.history.pop();
    out.parentElement?.classList.add(aborted ? 'stopped' : 'failed');
    if (!aborted) out.textContent = reply === '' ? errorText(e) : `${reply}\n[${errorText(e)}]`;
    status.textContent = aborted ? 'stopped' : errorText(e);
  } finally {
    out.parentElement?.classList.remove('streaming');
    out.parentElement?.classList.add('done');
    state.inflight = null;
    $('send').toggleAttribute('disabled', false);
    $('stop').toggleAttribute('disabled', true);
  }
}

function wire() {
  const keyInput = /** @type {HTMLInputElement} */ ($('api-key'));
  keyInput.value = state.apiKey;
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.apiKey = keyInput.value.trim();
    if (state.apiKey === '') localStorage.removeItem(KEY_STORE);
    else localStorage.setItem(KEY_STORE, state.apiKey);
    $('key-form').hidden = true;
    setConn('connecting', 'connecting…');
    void loadMcpServers();
  });
  const input = /** @type {HTMLTextAreaElement} */ ($('chat-input'));
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (text === '' || state.inflight !== null) return;
    input.value = '';
    void send(text);
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('chat-form').requestSubmit();
    }
  });
  $('stop').addEventListener('click', () => state.inflight?.abort());
  $('clear').addEventListener('click', () => {
    state.inflight?.abort();
    state.history = [];
    $('chat-log').replaceChildren();
    $('chat-status').textContent = '';
  });
}

wire();
void poll();
void loadMcpServers();
