import t from 'tap';
import { createReasoningSplitter, reasoningMode } from '../src/api/reasoning-splitter.ts';

// The think-block splitter, socket-free: every way of cutting the same text into deltas must give
// the same reasoning and content as splitting the whole text at once by hand.

function run(deltas: readonly string[], startInside = false): { reasoning: string; content: string } {
  const s = createReasoningSplitter(startInside);
  let reasoning = '';
  let content = '';
  for (const d of [...deltas.map((x) => s.push(x)), s.flush()]) {
    reasoning += d.reasoning;
    content += d.content;
  }
  return { reasoning, content };
}

/** All cuts of text into pieces of length 1..3 (deterministic), plus char by char and whole. */
function cuttings(text: string): string[][] {
  const out: string[][] = [[text], [...text]];
  for (let seed = 1; seed <= 20; seed++) {
    const parts: string[] = [];
    let i = 0;
    let k = seed;
    while (i < text.length) {
      const n = 1 + (k % 3);
      k = (k * 7 + 3) % 11;
      parts.push(text.slice(i, i + n));
      i += n;
    }
    out.push(parts);
  }
  return out;
}

const cases: [string, { reasoning: string; content: string }, boolean?][] = [
  ['<think>\nLet me see.\n</think>\n\nThe answer is 4.', { reasoning: '\nLet me see.\n', content: 'The answer is 4.' }],
  ['  <think>a</think>b', { reasoning: 'a', content: 'b' }],
  ['No thinking here.', { reasoning: '', content: 'No thinking here.' }],
  ['<thin', { reasoning: '', content: '<thin' }],
  ['<think>unfinished', { reasoning: 'unfinished', content: '' }],
  ['<think></think>', { reasoning: '', content: '' }],
  ['x <think>y</think>', { reasoning: '', content: 'x <think>y</think>' }],
  ['<think>a</thinkb</think>\n<tool_call>\n{}\n</tool_call>', { reasoning: 'a</thinkb', content: '<tool_call>\n{}\n</tool_call>' }],
  ['inside already</think>\n\nanswer', { reasoning: 'inside already', content: 'answer' }, true],
];

t.test('same split however the text is cut into deltas', async (t) => {
  for (const [text, want, inside] of cases) {
    for (const parts of cuttings(text)) t.same(run(parts, inside === true), want, `${JSON.stringify(text)} in ${parts.length} deltas`);
  }
});

t.test('reasoningMode reads the template and the generation prompt', async (t) => {
  t.same(reasoningMode('{{ "<think>" }}...{{ "</think>" }}', '<|im_start|>assistant\n'), { enabled: true, startInside: false });
  t.same(reasoningMode('...</think>...', '<|im_start|>assistant\n<think>\n'), { enabled: true, startInside: true });
  t.same(reasoningMode('{{ messages }}', 'x<think>\n'), { enabled: false, startInside: false });
});
