// Tool-call parsers: streamed and whole parsing agree at any split; markup never reaches content;
// arguments come back as the JSON that was written (an independent JSON.parse comparison);
// malformed calls stay content; ids are deterministic per seed.
import t from 'tap';
import { createToolCallParser, parseToolCalls, toolSyntaxFor, TOOL_SYNTAXES } from '../src/chat/tool-calls/index.ts';
import type { ToolCallEvent, ToolSyntax } from '../src/chat/tool-calls/index.ts';

let seed = 12345;
const rnd = (): number => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

const WORDS = ['Paris', 'naïve café', '東京', 'emoji 🎉', 'quote " and \\ backslash', 'new\nline', '', 'a,b}]', '<tool_call>'];
function randomValue(depth: number): unknown {
  const r = rnd();
  if (depth > 2 || r < 0.3) return pick(WORDS);
  if (r < 0.45) return Math.floor(rnd() * 2000) - 1000;
  if (r < 0.55) return rnd() * 100;
  if (r < 0.62) return pick([true, false, null]);
  if (r < 0.8) return Array.from({ length: Math.floor(rnd() * 3) }, () => randomValue(depth + 1));
  return randomArgs(depth + 1);
}
function randomArgs(depth = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const n = Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) o[pick(['city', 'unit', 'q', 'x y', 'ключ', 'n'])] = randomValue(depth);
  return o;
}

/** Pretty or compact JSON with random whitespace, as models write it. */
const spaced = (v: unknown): string => (rnd() < 0.5 ? JSON.stringify(v) : JSON.stringify(v, null, pick([1, 2, '\t'])));

interface Call { name: string; args: Record<string, unknown> }

function render(syntax: ToolSyntax, calls: Call[]): string {
  const ws = (): string => pick(['', ' ', '\n']);
  switch (syntax) {
    case 'hermes':
      return calls.map((c) => `<tool_call>\n{"name": ${JSON.stringify(c.name)}, "arguments": ${spaced(c.args)}}\n</tool_call>`).join('\n');
    case 'mistral':
      return `[TOOL_CALLS]${ws()}[${calls.map((c) => `{"name": ${JSON.stringify(c.name)},${ws()}"arguments": ${spaced(c.args)}}`).join(', ')}]`;
    case 'llama3_json':
      return `<|python_tag|>${calls.map((c) => `{"name": ${JSON.stringify(c.name)}, "parameters": ${spaced(c.args)}}`).join('; ')}`;
  }
}

/** Feeds text in random pieces; collects content and calls from the events. */
function stream(syntax: ToolSyntax, text: string, opts: { seed: number; toolNames?: string[] }): { content: string; calls: { id: string; name: string; args: string }[]; events: ToolCallEvent[] } {
  const p = createToolCallParser(syntax, opts);
  const events: ToolCallEvent[] = [];
  let i = 0;
  while (i < text.length) {
    const n = 1 + Math.floor(rnd() * 7);
    events.push(...p.push(text.slice(i, i + n)));
    i += n;
  }
  events.push(...p.end());
  let content = '';
  const calls: { id: string; name: string; args: string }[] = [];
  for (const e of events) {
    if (e.type === 'content') content += e.text;
    else if (e.type === 'tool_call_start') calls[e.index] = { id: e.id, name: e.name, args: '' };
    else if (e.type === 'tool_call_args') calls[e.index]!.args += e.fragment;
  }
  return { content, calls, events };
}

for (const syntax of TOOL_SYNTAXES) {
  t.test(`${syntax}: streamed at random splits = whole text = what was written`, (t) => {
    for (let round = 0; round < 60; round++) {
      const calls: Call[] = Array.from({ length: syntax === 'llama3_json' ? 1 + (round % 2) : 1 + (round % 3) }, () => ({ name: pick(['get_weather', 'search', 'now']), args: randomArgs() }));
      // Hermes and Mistral allow text before the calls; Llama calls stand alone.
      const prefix = syntax === 'llama3_json' ? '' : pick(['', 'Let me look that up. ', 'Sure:\n\n']);
      const text = prefix + render(syntax, calls);
      const whole = parseToolCalls(syntax, text, { seed: round });
      const streamed = stream(syntax, text, { seed: round });
      t.equal(whole.toolCalls.length, calls.length, `round ${round}: ${calls.length} calls`);
      for (let k = 0; k < calls.length; k++) {
        const w = whole.toolCalls[k]!;
        t.equal(w.name, calls[k]!.name);
        t.same(JSON.parse(w.arguments), calls[k]!.args, 'arguments are the JSON written');
        t.equal(streamed.calls[k]?.args, w.arguments, 'streamed fragments concatenate to the final arguments');
        t.equal(streamed.calls[k]?.id, w.id, 'same seed, same id');
        t.match(w.id, /^call_[A-Za-z0-9]{24}$/);
      }
      t.equal(whole.content, prefix.trim() === '' ? null : prefix.trimEnd(), 'content is the text before the calls');
      t.equal(streamed.content, whole.content ?? '', 'streamed content = whole content');
      t.notMatch(streamed.content, /tool_call|TOOL_CALLS|python_tag/, 'no markup in content');
      // Events are ordered: start, args…, end per call, never interleaved.
      let open = -1;
      for (const e of streamed.events) {
        if (e.type === 'tool_call_start') { t.equal(open, -1); open = e.index; }
        if (e.type === 'tool_call_args') t.equal(e.index, open);
        if (e.type === 'tool_call_end') { t.equal(e.index, open); open = -1; }
      }
      t.equal(open, -1, 'every call ended');
    }
    t.end();
  });
}

t.test('plain text passes through untouched, also when it holds look-alike characters', (t) => {
  const texts = ['Hello < world [TOOLS] {not json}', 'a <tool_c', 'price: {"name": 1}', '[TOOL_CALL', 'ends with <'];
  for (const syntax of TOOL_SYNTAXES) {
    for (const text of texts) {
      const r = parseToolCalls(syntax, text);
      t.equal(r.content, text, `${syntax}: ${text}`);
      t.equal(r.toolCalls.length, 0);
      t.equal(stream(syntax, text, { seed: 1 }).content, text, `${syntax} streamed: ${text}`);
    }
  }
  t.end();
});

t.test('malformed calls stay content and never crash', (t) => {
  const cases: [ToolSyntax, string][] = [
    ['hermes', 'x <tool_call>\n{"name": 3, "arguments": {}}\n</tool_call> y'],
    ['hermes', '<tool_call>\nnot json at all</tool_call>'],
    ['hermes', '<tool_call>\n{"arguments": {"a": 1}'],
    ['mistral', '[TOOL_CALLS] nope'],
    ['mistral', '[TOOL_CALLS][{"name": "f", "arguments": {"a": tru'],
    ['llama3_json', '{"name": "Bob", "age": 3}'],
    ['llama3_json', '{"name": "f", "parameters": '],
  ];
  for (const [syntax, text] of cases) {
    const whole = parseToolCalls(syntax, text);
    const s = stream(syntax, text, { seed: 2 });
    t.equal(s.content, whole.content ?? '', `${syntax}: streamed = whole for ${JSON.stringify(text)}`);
    if (whole.toolCalls.length === 0) t.equal(whole.content?.replace(/\s+/g, ''), text.replace(/\s+/g, ''), `${syntax}: kept as content: ${JSON.stringify(text)}`);
  }
  // An unknown function name is not a call when the request named its tools.
  const r = parseToolCalls('hermes', '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>', { toolNames: ['get_weather'] });
  t.equal(r.toolCalls.length, 0);
  t.match(r.content, /rm_rf/);
  // Hostile input: random bytes around markers must never throw.
  for (let i = 0; i < 300; i++) {
    const syntax = pick(TOOL_SYNTAXES);
    const text = Array.from({ length: 40 }, () => pick(['<tool_call>', '</tool_call>', '[TOOL_CALLS]', '<|python_tag|>', '{', '}', '[', ']', '"', ':', ',', '"name"', '"arguments"', 'x', ' ', '\\', '1', 'true'])).join('');
    t.doesNotThrow(() => { parseToolCalls(syntax, text); stream(syntax, text, { seed: i }); });
  }
  t.end();
});

t.test('arguments given as a JSON string are unwrapped; missing arguments are {}', (t) => {
  const r = parseToolCalls('hermes', '<tool_call>\n{"name": "f", "arguments": "{\\"a\\": [1, 2]}"}\n</tool_call><tool_call>{"name": "g"}</tool_call>');
  t.same(r.toolCalls.map((c) => [c.name, c.arguments]), [['f', '{"a":[1,2]}'], ['g', '{}']]);
  t.end();
});

t.test('ids: deterministic per seed, distinct across calls and seeds', (t) => {
  const text = render('hermes', [{ name: 'a', args: {} }, { name: 'b', args: {} }]);
  const a = parseToolCalls('hermes', text, { seed: 42 }).toolCalls.map((c) => c.id);
  const b = parseToolCalls('hermes', text, { seed: 42 }).toolCalls.map((c) => c.id);
  const c = parseToolCalls('hermes', text, { seed: 43 }).toolCalls.map((x) => x.id);
  t.same(a, b);
  t.not(a[0], a[1]);
  t.not(a[0], c[0]);
  t.end();
});

t.test('toolSyntaxFor reads the template first, then the family', (t) => {
  t.equal(toolSyntaxFor('qwen3', '{% for tool in tools %}<tool_call>{% endfor %}'), 'hermes');
  t.equal(toolSyntaxFor('llama', '[TOOL_CALLS] {{ tool_calls }}'), 'mistral');
  t.equal(toolSyntaxFor('llama', '{{- "<|python_tag|>" }}'), 'llama3_json');
  t.equal(toolSyntaxFor('mistral', ''), 'mistral');
  t.equal(toolSyntaxFor('llama', ''), 'llama3_json');
  t.equal(toolSyntaxFor('qwen2', ''), 'hermes');
  t.end();
});
