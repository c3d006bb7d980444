// Splits a reasoning model's thinking from its answer, as vLLM's and DeepSeek's APIs do: Qwen3 and
// R1-style models write `<think> … </think>` before the answer. The thinking goes to
// `reasoning_content` (a field OpenAI clients ignore and reasoning-aware ones show apart), so
// `content` holds only the answer, and the tool-call parser only ever sees the answer.
// Pure: text deltas in, {reasoning, content} deltas out; markers split across deltas are handled.

const OPEN = '<think>';
const CLOSE = '</think>';

export interface SplitDelta {
  readonly reasoning: string;
  readonly content: string;
}

export interface ReasoningSplitter {
  push(text: string): SplitDelta;
  /** End of output: whatever is held back (an unclosed think block stays reasoning). */
  flush(): SplitDelta;
}

/** Length of the longest suffix of s that is a proper prefix of marker. */
function partial(s: string, marker: string): number {
  for (let n = Math.min(marker.length - 1, s.length); n > 0; n--) if (marker.startsWith(s.slice(s.length - n))) return n;
  return 0;
}

/**
 * `startInside`: the prompt already opened the block (templates that end the generation prompt with
 * `<think>\n`), so output starts as reasoning.
 */
export function createReasoningSplitter(startInside = false): ReasoningSplitter {
  let state: 'start' | 'thinking' | 'after' | 'content' = startInside ? 'thinking' : 'start';
  let held = '';

  const push = (text: string): SplitDelta => {
    let buf = held + text;
    held = '';
    let reasoning = '';
    let content = '';
    for (;;) {
      if (state === 'start') {
        const lead = buf.length - buf.trimStart().length;
        const rest = buf.slice(lead);
        if (rest.startsWith(OPEN)) {
          state = 'thinking';
          buf = rest.slice(OPEN.length);
          continue;
        }
        if (OPEN.startsWith(rest)) {
          held = buf; // could still become <think>
          break;
        }
        state = 'content';
        continue;
      }
      if (state === 'thinking') {
        const at = buf.indexOf(CLOSE);
        if (at >= 0) {
          reasoning += buf.slice(0, at);
          buf = buf.slice(at + CLOSE.length);
          state = 'after';
          continue;
        }
        const keep = partial(buf, CLOSE);
        reasoning += buf.slice(0, buf.length - keep);
        held = buf.slice(buf.length - keep);
        break;
      }
      if (state === 'after') {
        // The template puts blank lines between the block and the answer; they belong to neither.
        const trimmed = buf.trimStart();
        if (trimmed === '') break;
        buf = trimmed;
        state = 'content';
        continue;
      }
      content += buf;
      break;
    }
    return { reasoning, content };
  };

  return {
    push,
    flush() {
      const rest = held;
      held = '';
      if (rest === '') return { reasoning: '', content: '' };
      return state === 'thinking' ? { reasoning: rest, content: '' } : { reasoning: '', content: rest };
    },
  };
}

/** Whether a chat template uses think blocks, and whether its generation prompt opens one. */
export function reasoningMode(templateSource: string, promptText: string): { enabled: boolean; startInside: boolean } {
  const enabled = templateSource.includes(CLOSE);
  const tail = promptText.trimEnd();
  return { enabled, startInside: enabled && tail.endsWith(OPEN) };
}
