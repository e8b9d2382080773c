import { LlmkitError } from '../shared/errors.js';
import type { DecoderSession } from './decoder-session.js';
import type { Device } from './devices.js';
import { NgramDrafter, type Drafter } from './drafter.js';

/** The drafter `--draft` names: `ngram`, or a draft model's exported folder. Checked against the target's decoder. */
export async function openDrafter(draft: string, target: DecoderSession, opts: { device?: Device; threads?: number }): Promise<Drafter> {
  if (!target.verifiesDrafts) {
    throw new LlmkitError(
      `--draft needs a decoder that verifies several tokens a pass; ${target.model.dir} has ${target.model.manifest.graph === 'fused-gqa' ? 'GroupQueryAttention (export --gqa)' : 'an output layer llmkit could not find'}`,
      'serve an export made without --gqa, or leave out --draft',
    );
  }
  if (draft === 'ngram') return new NgramDrafter();
  const { ModelDrafter } = await import('./draft-model.js');
  return ModelDrafter.open(draft, target, opts);
}
