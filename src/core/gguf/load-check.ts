// Run by checkGgufLoads (llama-cpp.ts) as its own process: `node load-check.js NODE_LLAMA_CPP_ENTRY FILE.gguf`.
// Exit 0 when llama.cpp loads the file and tokenizes a newline; llama.cpp's warnings and errors go to stderr.
import { pathToFileURL } from 'node:url';

interface NodeLlamaCpp {
  getLlama(options: object): Promise<{ loadModel(options: object): Promise<{ tokenize(text: string): unknown[]; dispose(): Promise<void> }> }>;
  LlamaLogLevel: Record<string, string>;
}

const [entry, file] = process.argv.slice(2);
const llamaCpp = (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
const llama = await llamaCpp.getLlama({
  gpu: false,
  build: 'never',
  logLevel: llamaCpp.LlamaLogLevel.warn,
  logger: (level: string, message: string) => process.stderr.write(`[${level}] ${message.trim()}\n`),
});
const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
if (model.tokenize('\n').length === 0) {
  process.stderr.write('[error] a newline tokenizes to nothing\n');
  process.exitCode = 1;
}
await model.dispose();
