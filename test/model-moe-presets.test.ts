// MoE make-model presets (issue 23 item 3): the benchmark shape carries Qwen3-30B-A3B's published
// layer config (bf16 by default, as on the Hub), config.json reads back to the MoE config the
// generator meant for every MoE preset, and a bad MoE config is refused with a clear message.
import t from 'tap';
import { run as makeModel } from '../src/cli/make-model-command.ts';
import { isHearthError } from '../src/errors/index.ts';
import { parseConfig } from '../src/model/config.ts';
import { checkpointPlan, resolveShape, shapeToConfig } from '../src/model/index.ts';

t.test('qwen3-30b-a3b-layers: Qwen3-30B-A3B layers, bf16, 8 of 128 experts', async (t) => {
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => {
    out.push(String(s));
    return true;
  }) as typeof process.stdout.write;
  let rc: number;
  try {
    rc = await makeModel(['/nonexistent/dry', '--preset', 'qwen3-30b-a3b-layers', '--dry-run']);
  } finally {
    process.stdout.write = write;
  }
  t.equal(rc, 0);
  const text = out.join('');
  t.match(text, /"torch_dtype": "bfloat16"/, 'bf16 by default');
  t.match(JSON.parse(text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1)), {
    architectures: ['Qwen3MoeForCausalLM'],
    model_type: 'qwen3_moe',
    hidden_size: 2048,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    head_dim: 128,
    num_experts: 128,
    num_experts_per_tok: 8,
    moe_intermediate_size: 768,
    norm_topk_prob: true,
    decoder_sparse_step: 1,
    mlp_only_layers: [],
    num_hidden_layers: 4,
  });
});

t.test('every MoE preset: config.json parses back to the generator\'s MoE config', async (t) => {
  for (const preset of ['tiny-qwen3-moe', 'tiny-mixtral', 'qwen3-30b-a3b-layers'] as const) {
    for (const extra of [{}, { mlpOnlyLayers: [0, 2], decoderSparseStep: 2, normTopK: false }]) {
      const opts = { preset, ...extra, tokenizer: false as const };
      const { config } = checkpointPlan(opts);
      const parsed = parseConfig(JSON.stringify(config), null, { hasLmHead: true });
      t.same(parsed.moe, shapeToConfig(resolveShape(opts), false).moe, `${preset} ${JSON.stringify(extra)}`);
    }
  }
  // mlp_only_layers [0, 2] with step 2 leaves layers 1 and 3 routed: (i + 1) % 2 == 0 and not listed.
  t.same(shapeToConfig(resolveShape({ preset: 'tiny-qwen3-moe', mlpOnlyLayers: [0, 2], decoderSparseStep: 2 })).moe?.sparseLayers, [1, 3]);
  t.same(shapeToConfig(resolveShape({ preset: 'tiny-qwen3-moe', mlpOnlyLayers: [1], decoderSparseStep: 2 })).moe?.sparseLayers, [3]);
});

t.test('a MoE config that cannot route is refused, naming the field', async (t) => {
  const bad = { ...checkpointPlan({ preset: 'tiny-qwen3-moe', tokenizer: false }).config, num_experts_per_tok: 9 };
  let err: unknown = null;
  try {
    parseConfig(JSON.stringify(bad), null, { hasLmHead: true });
  } catch (e) {
    err = e;
  }
  t.ok(isHearthError(err, 'HEARTH_ERR_CHECKPOINT_CONFIG'), 'a checkpoint config error');
  t.match((err as Error | null)?.message, /num_experts_per_tok \(9\) must not exceed the number of experts \(8\)/);
  const noSize = { ...checkpointPlan({ preset: 'tiny-mixtral', tokenizer: false }).config, intermediate_size: 0 };
  t.throws(() => parseConfig(JSON.stringify(noSize), null, { hasLmHead: true }), /intermediate_size/);
});
