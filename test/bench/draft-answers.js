// The teacher's greedy answers to draft-data.js's training prompts, made by llmkit's own engine (the exported teacher,
// every prompt submitted at once so the scheduler batches them; each row written as it is answered): on a CPU this is several times faster than
// `distill --mode sequence`'s PyTorch generate, whose 64 prompts did not finish in 17 minutes on the shared
// 2-core machine. The rows come back with the teacher's answer as the assistant turn, for `llmkit distill --mode
// logits --alpha 0` (cross-entropy on them: sequence-level distillation without the teacher running again).
//   npm run build && node test/bench/draft-answers.js --model TEACHER_ONNX --data IN.jsonl --out OUT.jsonl [--new 96] [--threads 2]
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { LocalEngine } from '../../dist/engine/local-engine.js';
import { GREEDY } from '../../dist/engine/sampling.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : fallback);
if (!flag('model') || !flag('data') || !flag('out')) throw new Error('usage: node test/bench/draft-answers.js --model TEACHER_ONNX --data IN.jsonl --out OUT.jsonl [--new 96]');
const rows = readFileSync(flag('data'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));
const engine = await LocalEngine.open(flag('model'), { device: 'cpu', threads: Number(flag('threads', '2')), prefixCacheMb: 0, maxQueue: 100_000 });
const started = performance.now();
let done = 0;
writeFileSync(flag('out'), '');
await Promise.all(
  rows.map(
    (row) =>
      new Promise((resolve, reject) => {
        const tokens = [];
        engine.scheduler.submit({
          promptIds: engine.tokenizer.encodeChat(row.messages.filter((m) => m.role !== 'assistant')),
          maxTokens: Number(flag('new', '96')),
          sampling: GREEDY,
          stopTokenIds: engine.model.manifest.eos_token_ids,
          sink: {
            token: (id) => (tokens.push(id), false),
            end: (end) => {
              if (end.error) return reject(end.error);
              // Each row as it is answered: a run stopped early leaves the answers it made.
              const messages = [...row.messages.filter((m) => m.role !== 'assistant'), { role: 'assistant', content: engine.tokenizer.decode(tokens).trim() }];
              appendFileSync(flag('out'), JSON.stringify({ messages }) + '\n');
              if (++done % 16 === 0) console.error(`${done}/${rows.length} answered, ${((performance.now() - started) / 1000).toFixed(0)} s`);
              resolve();
            },
          },
        });
      }),
  ),
);
console.error(`${flag('out')}: ${rows.length} answers in ${((performance.now() - started) / 1000).toFixed(0)} s`);
await engine.close();
