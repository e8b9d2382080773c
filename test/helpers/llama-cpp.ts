import { pathToFileURL } from 'node:url';
import { nodeLlamaCppEntry } from '../../src/core/gguf/llama-cpp.js';

export { NODE_LLAMA_CPP } from '../../src/core/gguf/llama-cpp.js';

/** llama.cpp for the GGUF tests: node-llama-cpp with its prebuilt CPU binary (installed once, as export --gguf checks with it). */
export async function nodeLlamaCpp(): Promise<typeof import('node-llama-cpp')> {
  return import(pathToFileURL(await nodeLlamaCppEntry()).href);
}
