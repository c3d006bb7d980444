// createConstraint: the TokenConstraint the scheduler calls when a request's output must follow a
// grammar (response_format json_object/json_schema, tool_choice required/named, strict tools).
//
// Budget: a constraint knows its token budget (max_tokens). Once the tokens used plus the fewest
// bytes still needed to finish come within a margin of it, only tokens on a shortest way to a
// complete output are allowed, so even a random model closes its JSON instead of running into
// `length`.

import { HearthError } from '../../errors/index.ts';
import { sampleToken } from '../../sampling/index.ts';
import type { SampledToken, SamplingParams } from '../../sampling/types.ts';
import type { TokenConstraint } from '../../scheduler/types.ts';
import type { ToolDef, Tokenizer } from '../../tokenizer/types.ts';
import type { ToolSyntax } from '../tool-calls/syntax.ts';
import { DONE, TextFrame, canEnd, distance, initialState, stepState } from './frames.ts';
import type { MState } from './frames.ts';
import { ANY_OBJECT } from './grammar-node.ts';
import type { GNode } from './grammar-node.ts';
import { compileSchema } from './schema-compile.ts';
import { fillMask, survives } from './token-mask.ts';
import { toolCallGrammar } from './tool-grammar.ts';
import type { ToolCallMode } from './tool-grammar.ts';
import { vocabIndex } from './vocab-index.ts';
import type { ByteVocab, VocabIndex } from './vocab-index.ts';

/** Default budget when the request gave no max_tokens. */
export const DEFAULT_CONSTRAINT_BUDGET = 256;
/** Tokens kept in reserve when deciding to close (a closing token may cut just one byte). */
const CLOSE_MARGIN = 4;

interface BudgetOpt {
  /** The request's max_tokens: the constraint closes the output before it runs out. */
  readonly maxTokens?: number | undefined;
}

export type ConstraintSpec =
  | ({ readonly kind: 'json_object' } & BudgetOpt)
  | ({ readonly kind: 'json_schema'; readonly schema: unknown } & BudgetOpt)
  | ({
      readonly kind: 'tool_call';
      readonly syntax: ToolSyntax;
      readonly tools: readonly ToolDef[];
      readonly mode: ToolCallMode;
      readonly name?: string | undefined;
      readonly parallel: boolean;
    } & BudgetOpt);

export interface GrammarConstraint extends TokenConstraint {
  /** Fewest bytes still needed for a complete output (0: it may end now). */
  remaining(): number;
  /** Tokens accepted so far. */
  readonly used: number;
  /** Times closing found no token on a shortest path (a grammar bug if ever > 0; tests check it). */
  readonly closeMisses: number;
}

export function grammarFor(spec: ConstraintSpec): GNode {
  switch (spec.kind) {
    case 'json_object': return ANY_OBJECT;
    case 'json_schema': return compileSchema(spec.schema, 'response_format.json_schema.schema');
    case 'tool_call': return toolCallGrammar(spec);
  }
}

class Constraint implements GrammarConstraint {
  private state: MState;
  private finished = false;
  closeMisses = 0;
  private readonly history: number[] = [];
  private readonly mask: Uint8Array;
  private readonly budget: number;

  constructor(root: GNode, private readonly ix: VocabIndex, budget: number, private readonly encode: Encode | null) {
    this.state = initialState(root);
    this.mask = new Uint8Array(ix.vocabSize);
    this.budget = budget;
  }

  get used(): number { return this.history.length; }

  remaining(): number { return distance(this.state); }

  pick(logits: Float32Array, sampling: SamplingParams, pos: number): SampledToken {
    if (this.done()) return { token: this.ix.eos[0] ?? 0 };
    // Inside text the grammar forces, the tokenizer's own spelling of it is the only choice.
    const canon = this.canonical()[0];
    if (canon !== undefined) {
      this.mask.fill(0);
      this.mask[canon] = 1;
      return sampleToken(logits, sampling, { history: this.history, promptLen: 0, pos, allowed: this.mask });
    }
    // Invariant: distance + margin ≤ tokens left. Closing starts when it is tight; before that no
    // token may break it, so closing (≥ 1 byte nearer per token) always ends inside the budget.
    const left = this.budget - this.history.length;
    const closing = distance(this.state) + CLOSE_MARGIN >= left;
    const maxDist = left - 1 - CLOSE_MARGIN;
    // Greedy without logprobs: when the model's own favourite is allowed it is also the best
    // allowed token, so the mask (the costly part) is skipped. A model that follows the format
    // takes this path almost every step.
    if (!closing && sampling.topLogprobs < 0 && (sampling.temperature === 0 || sampling.topK === 1)) {
      const free = sampleToken(logits, sampling, { history: this.history, promptLen: 0, pos });
      if (this.allows(free.token, maxDist)) return free;
    }
    let n = fillMask(this.ix, this.state, this.mask, closing, maxDist);
    if (n === 0 && closing) {
      this.closeMisses++;
      n = fillMask(this.ix, this.state, this.mask, false);
    }
    if (n === 0) throw new HearthError('HEARTH_ERR_INTERNAL', ['constrained decoding: no token of the vocabulary can continue the output']);
    return sampleToken(logits, sampling, { history: this.history, promptLen: 0, pos, allowed: this.mask });
  }

  private allows(token: number, maxDist: number): boolean {
    if (this.ix.eos.includes(token)) return canEnd(this.state);
    const bytes = this.ix.bytes[token];
    return bytes !== null && bytes !== undefined && survives(this.state, bytes, maxDist);
  }

  accept(token: number): void {
    if (this.finished) return;
    if (this.ix.eos.includes(token)) {
      if (!canEnd(this.state)) throw new HearthError('HEARTH_ERR_INTERNAL', ['constrained decoding: end of sequence before the output is complete']);
      this.finished = true;
      return;
    }
    const bytes = this.ix.bytes[token];
    if (!bytes) throw new HearthError('HEARTH_ERR_INTERNAL', [`constrained decoding: token ${token} cannot appear in the output`]);
    const s = advance(this.state, bytes);
    if (s.length === 0) throw new HearthError('HEARTH_ERR_INTERNAL', [`constrained decoding: token ${token} breaks the grammar`]);
    // The canonical chain stays valid along its own first token (worked out afresh once used up:
    // it stops at CANONICAL_TOKENS).
    const chain = this.chain;
    this.chain = chain !== null && chain.state === this.state && chain.tokens[0] === token && chain.tokens.length > 1
      ? { state: s, tokens: chain.tokens.slice(1), end: chain.end }
      : null;
    this.state = s;
    this.history.push(token);
  }

  done(): boolean {
    return this.finished || this.state.every((f) => f === DONE);
  }

  forced(max: number): number[] {
    if (max <= 0 || this.done()) return [];
    // The canonical tokens pick() will choose, then the tokenizer's guess at the span's last one
    // (the model chooses that one, since what follows the span may merge with it).
    const canon = this.canonical();
    if (canon.length >= max) return canon.slice(0, max);
    const at = this.chain?.end ?? this.state;
    const bytes = forcedBytes(at, FORCED_BYTES);
    if (bytes.length === 0) return [...canon];
    const rest = (this.encode === null ? null : encodedTokens(this.ix, this.encode, bytes, max - canon.length)) ?? forcedTokens(this.ix, bytes, max - canon.length);
    return [...canon, ...rest];
  }

  /**
   * Canonical constrained decoding: where the grammar forces the next bytes (a key, punctuation,
   * the rest of an enum value), the tokens the tokenizer's encoder makes of them, which pick()
   * then allows alone. A model may spell forced text other ways (a random model does, 50-60% of
   * the time), but the spelling it was trained on is the encoder's, and this makes the output
   * canonical and every grammar draft (speculative decoding) certain to be accepted. The span's
   * last token is left to the model: the bytes after the span may merge with it. Without the
   * tokenizer's encoder (a bare vocabulary) nothing is forced. Cached along its own tokens.
   */
  private canonical(): readonly number[] {
    if (this.encode === null) return [];
    if (this.chain !== null && this.chain.state === this.state) return this.chain.tokens;
    const tokens: number[] = [];
    let s: MState = this.state;
    while (tokens.length < CANONICAL_TOKENS && !this.done()) {
      const bytes = forcedBytes(s, FORCED_BYTES);
      if (bytes.length === 0) break;
      const ids = encodedTokens(this.ix, this.encode, bytes, 2);
      if (ids === null || ids.length < 2) break;
      const first = this.ix.bytes[ids[0]!];
      if (first === null || first === undefined) break;
      tokens.push(ids[0]!);
      s = advance(s, first);
    }
    this.chain = { state: this.state, tokens, end: s };
    return tokens;
  }
  /** canonical()'s tokens from `state`, and the state after them (where the span's free last
   *  token starts). */
  private chain: { readonly state: MState; readonly tokens: readonly number[]; readonly end: MState } | null = null;
}

function advance(state: MState, bytes: Uint8Array): MState {
  let s: MState = state;
  for (let i = 0; i < bytes.length && s.length > 0; i++) s = stepState(s, bytes[i]!);
  return s;
}

/** Most canonical tokens worked out ahead at once (a key and its punctuation are a few). */
const CANONICAL_TOKENS = 16;

/** Longest forced text looked at per draft (a draft is at most a few tokens anyway). */
const FORCED_BYTES = 96;

/**
 * Grammar jump-forward (SGLang's "compressed FSM" jump-forward, Zheng et al. 2024, used here only
 * to draft): the bytes the grammar forces from `state`, while exactly one byte may follow and the
 * output may not end (an end would be the alternative).
 */
export function forcedBytes(state: MState, limit: number): Uint8Array {
  const out: number[] = [];
  let s: MState = state;
  while (out.length < limit && s.length > 0 && !canEnd(s)) {
    // A string body or free text admits many bytes: no need to try all 256.
    if (s.some((f) => f.plainRoom() >= 0 || f instanceof TextFrame)) break;
    let only = -1;
    let next: MState = [];
    for (let b = 0; b < 256; b++) {
      const t = stepState(s, b);
      if (t.length === 0) continue;
      if (only >= 0) { only = -2; break; }
      only = b;
      next = t;
    }
    if (only < 0) break;
    out.push(only);
    s = next;
  }
  return Uint8Array.from(out);
}

type Encode = (text: string) => number[];

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The forced bytes as the tokenizer would encode them (what a trained model has seen), when they
 * are whole UTF-8 and encode to tokens that spell exactly them; else null.
 */
function encodedTokens(ix: VocabIndex, encode: Encode, bytes: Uint8Array, max: number): number[] | null {
  let text: string;
  try { text = strictUtf8.decode(bytes); } catch { return null; }
  const ids = encode(text);
  let at = 0;
  for (const id of ids) {
    const b = ix.bytes[id];
    if (b === null || b === undefined || at + b.length > bytes.length) return null;
    for (let i = 0; i < b.length; i++) if (b[i] !== bytes[at + i]) return null;
    at += b.length;
  }
  return at === bytes.length ? ids.slice(0, max) : null;
}

/**
 * The forced bytes as tokens, longest vocabulary match first (what a BPE tokenizer usually makes
 * of JSON punctuation and keys); only whole tokens inside the forced text, at most `max`.
 */
export function forcedTokens(ix: VocabIndex, bytes: Uint8Array, max: number): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < bytes.length && out.length < max) {
    // Walk the preorder trie: children of a node at depth d are the depth-(d+1) nodes of its subtree.
    let best = -1;
    let bestLen = 0;
    let from = 0;
    let to = ix.nodes;
    for (let d = 1; at + d - 1 < bytes.length; d++) {
      const b = bytes[at + d - 1]!;
      let i = from;
      while (i < to && ix.label[i] !== b) i = ix.end[i]!;
      if (i >= to) break;
      if (ix.tok[i]! >= 0) { best = ix.tok[i]!; bestLen = d; }
      from = i + 1;
      to = ix.end[i]!;
    }
    if (best < 0) break;
    out.push(best);
    at += bestLen;
  }
  return out;
}

/**
 * A fresh constraint for one sequence. Throws HearthError HEARTH_ERR_INVALID_REQUEST (param set)
 * when the schema or tool choice cannot be satisfied.
 */
export function createConstraint(spec: ConstraintSpec, tokenizer: ByteVocab & { encode?: Tokenizer['encode'] }): GrammarConstraint {
  const root = grammarFor(spec);
  // With the tokenizer's encoder, jump-forward drafts are tokenized as the model saw such text.
  const enc = tokenizer.encode;
  const encode = enc === undefined ? null : (text: string): number[] => enc.call(tokenizer, text, { addSpecialTokens: false });
  return new Constraint(root, vocabIndex(tokenizer), spec.maxTokens ?? DEFAULT_CONSTRAINT_BUDGET, encode);
}
