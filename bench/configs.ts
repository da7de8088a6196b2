// Model configs the benchmarks share, in a module that imports nothing (a child process that
// runs another engine, bench/generate.ts's llama.cpp runs, loads none of lorakit with it).

/** The GPT-2-small-shaped llama: hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000. */
export const BENCH_LLAMA_CONFIG = {
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 768,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_key_value_heads: 12,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
};
