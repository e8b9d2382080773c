import { makeModel, type ModelPreset } from '../../src/core/model-maker.js';

/** The built-in tiny model (cached under LLMKIT_HOME, made once). */
export async function tinyModel(preset: ModelPreset = 'tiny', seed = 0): Promise<string> {
  return (await makeModel({ preset, seed })).path;
}
