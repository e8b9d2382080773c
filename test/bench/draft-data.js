// Chat data for distilling a draft of SmolLM2-135M-Instruct (test/bench/device/draft-run.sh): instructions over
// WikiText-2 paragraphs (../shared/data), the kind of answer that reads and rewrites its prompt. Writes, under OUT:
//   train.jsonl    messages rows (the assistant's answer a placeholder: `distill --mode sequence` puts the teacher's in)
//   prompts.json   held-out prompts (later paragraphs, the same instructions) for test/bench/speculative.js
//   held-out.jsonl the same prompts as messages rows, for the teacher's answers to them (draft-cpu.sh agreement)
//   node test/bench/draft-data.js OUT [--train 1024] [--held-out 8]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : fallback);
const out = args[0];
if (!out) throw new Error('usage: node test/bench/draft-data.js OUT [--train N] [--held-out N]');
const here = new URL('.', import.meta.url).pathname;
const INSTRUCTIONS = [
  'Summarize this paragraph in two sentences:',
  'What is this passage about? Answer in a few sentences.',
  'Rewrite this paragraph in simpler words:',
  'List three facts stated in this text:',
];
// WikiText's tokenized spacing (" , ", "@-@") undone, so prompts read as ordinary text.
const plain = (s) =>
  s
    .trim()
    .replace(/ @(.)@ /g, '$1')
    .replace(/ ([,.;:!?)])/g, '$1')
    .replace(/([(]) /g, '$1');
const paragraphs = readFileSync(join(here, '../../../shared/data/wikitext-2-test.txt'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.trim().startsWith('=') && l.length > 300 && l.length < 1200)
  .map(plain);
const heldOut = flag('held-out', 8);
const train = Math.min(flag('train', 1024), paragraphs.length - heldOut);
const prompt = (p, i) => `${INSTRUCTIONS[i % INSTRUCTIONS.length]}\n\n${p}`;
mkdirSync(out, { recursive: true });
const rows = paragraphs.slice(0, train).map((p, i) =>
  JSON.stringify({
    messages: [
      { role: 'user', content: prompt(p, i) },
      { role: 'assistant', content: '(the teacher answers)' },
    ],
  }),
);
writeFileSync(join(out, 'train.jsonl'), rows.join('\n') + '\n');
const heldOutPrompts = paragraphs.slice(-heldOut).map(prompt);
writeFileSync(join(out, 'prompts.json'), JSON.stringify(heldOutPrompts, null, 1) + '\n');
writeFileSync(join(out, 'held-out.jsonl'), heldOutPrompts.map((p) => JSON.stringify({ messages: [{ role: 'user', content: p }] })).join('\n') + '\n');
console.error(`${out}: ${rows.length} training prompts, ${heldOut} held out (of ${paragraphs.length} paragraphs)`);
