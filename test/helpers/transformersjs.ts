import { AutoModelForCausalLM, Tensor, env as hfEnv } from '@huggingface/transformers';

hfEnv.allowRemoteModels = false;

/** Greedy tokens from transformers.js (onnxruntime-node backend) for a model folder; it stops at EOS. */
export async function transformersJsGreedy(dir: string, promptIds: number[], maxNewTokens: number): Promise<number[]> {
  const model = await AutoModelForCausalLM.from_pretrained(dir, { local_files_only: true, dtype: 'fp32', device: 'cpu' });
  try {
    const output = (await model.generate({
      input_ids: new Tensor('int64', BigInt64Array.from(promptIds, BigInt), [1, promptIds.length]),
      attention_mask: new Tensor('int64', new BigInt64Array(promptIds.length).fill(1n), [1, promptIds.length]),
      max_new_tokens: maxNewTokens,
      do_sample: false,
    })) as Tensor;
    return Array.from(output.data as BigInt64Array, Number).slice(promptIds.length);
  } finally {
    await model.dispose();
  }
}
