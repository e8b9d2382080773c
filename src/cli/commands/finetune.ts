import { Command } from 'commander';
import { FINETUNE_DEFAULTS as D, FINETUNE_KEYS, FINETUNE_PATH_KEYS, resolveFinetuneOptions } from '../../core/finetune/options.js';
import type { FinetuneSummary } from '../../core/finetune/run.js';
import { loadRecipe } from '../../core/recipe.js';
import { action } from '../action.js';
import { formatBytes, formatRows, type GlobalFlags } from '../output.js';
import { formatExact, runTrainingCommand } from '../training-run.js';

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

export function finetuneCommand(): Command {
  const command = new Command('finetune')
    .description('fine-tune a causal LM on JSONL data, fully or with LoRA (Python worker, CPU or CUDA)')
    .argument('[model]', "Hugging Face model folder, or builtin:tiny (default: the recipe's model)")
    .option('--recipe <file>', "YAML recipe whose keys are these flags' names; flags you type override it")
    .option('--data <file>', 'training data, JSONL: messages, instruction/output, prompt/completion or text (repeat for more files)', collect)
    .option('--eval-data <file>', 'evaluation data, JSONL (repeat for more files)', collect)
    .option('--eval-split <fraction>', 'hold out this fraction of --data for evaluation, e.g. 0.1')
    .option('--out <dir>', 'output folder: checkpoints, metrics.jsonl, llmkit-config.json, adapter/ or model/')
    .option('--lora', 'train a LoRA adapter on the frozen base (default: full fine-tuning)')
    .option('--no-lora', 'full fine-tuning even where the recipe says lora')
    .option('--lora-r <n>', `LoRA rank (default: ${D.loraR})`)
    .option('--lora-alpha <n>', `LoRA alpha; updates are scaled by alpha/r (default: ${D.loraAlpha})`)
    .option('--lora-dropout <p>', `dropout on the LoRA input (default: ${D.loraDropout})`)
    .option('--lora-targets <names>', 'comma-separated module names to adapt (default: every linear layer of attention and MLP)')
    .option('--epochs <n>', `passes over the data (default: ${D.epochs})`)
    .option('--max-steps <n>', 'optimizer steps to train, instead of --epochs')
    .option('--batch-size <n>', `rows per micro-batch (default: ${D.batchSize})`)
    .option('--grad-accum <n>', `micro-batches per optimizer step (default: ${D.gradAccum})`)
    .option('--lr <rate>', `peak learning rate (default: ${D.lrLora} with --lora, ${D.lrFull} without)`)
    .option('--schedule <name>', `learning-rate decay after warm-up: linear or cosine (default: ${D.schedule})`)
    .option('--warmup-ratio <fraction>', `fraction of the steps that warm the learning rate up (default: ${D.warmupRatio})`)
    .option('--weight-decay <w>', `AdamW weight decay (default: ${D.weightDecay})`)
    .option('--max-grad-norm <n>', `clip gradients to this global norm; 0 = off (default: ${D.maxGradNorm})`)
    .option('--seed <n>', `seed for initial weights, data order and dropout (default: ${D.seed})`)
    .option('--max-seq-len <n>', `truncate examples to this many tokens, counted and reported (default: the model's context, at most ${D.maxSeqLenCap})`)
    .option('--packing', 'pack several short examples into each row; they do not attend to each other')
    .option('--no-packing', 'one example per row even where the recipe packs')
    .option('--train-on-prompt', 'put the loss on prompts too, not only on answers')
    .option('--no-train-on-prompt', 'loss on answers only even where the recipe says otherwise')
    .option('--gradient-checkpointing', 'recompute activations in the backward pass: less memory, more compute')
    .option('--no-gradient-checkpointing', 'keep activations even where the recipe checkpoints them')
    .option('--eval-every <n>', 'eval loss every N steps (it is always computed at the end when there is eval data)')
    .option('--save-every <n>', 'checkpoint every N steps (one is also saved on Ctrl-C and at the end)')
    .option('--resume', 'continue from the newest checkpoint in --out (pass the same flags)')
    .option('--merge', 'with --lora: also write the base with the adapter merged in, to <out>/merged')
    .option('--no-merge', 'do not merge even where the recipe says so')
    .option('--device <name>', `auto, cpu or cuda (default: ${D.device})`)
    .option('--precision <name>', `auto (bf16 autocast on a CUDA GPU that has it, else fp32), bf16 or fp32 (default: ${D.precision})`)
    .option('--compile', 'torch.compile each decoder layer and replay it as CUDA graphs (CUDA only; falls back to eager)')
    .option('--no-compile', 'run eagerly even where the recipe compiles')
    .option('--exact-match <n>', `greedy-answer the first N eval (else training) examples before and after training and count exact matches (default: ${D.exactMatch}, off)`)
    .option('--gpus <n>', 'train on N CUDA GPUs of this machine, one process each, through torchrun (DDP, or --fsdp)')
    .option('--nproc <n>', 'train in N processes on this machine through torchrun, on the --device (CPU processes use gloo)')
    .option('--nnodes <n>', 'machines in the job (default 1); run the same command on each with its --node-rank')
    .option('--node-rank <n>', "this machine's number, 0 to nnodes-1 (node 0 hosts the rendezvous)")
    .option('--master-addr <host>', 'address of node 0, which every node connects to (needed with --nnodes > 1)')
    .option('--master-port <port>', 'rendezvous port on node 0 (default: a free one on one machine, 29500 across machines)')
    .option('--fsdp', 'shard weights, gradients and optimizer state across the processes (FSDP full-shard) instead of DDP')
    .option('--no-fsdp', 'DDP even where the recipe shards');

  return command.action(
    action(async (opts: Record<string, unknown>, flags: GlobalFlags, args: string[]) => {
      const { runFinetune } = await import('../../core/finetune/run.js');
      const recipePath = opts.recipe as string | undefined;
      const recipe = recipePath ? await loadRecipe(recipePath, { keys: FINETUNE_KEYS, pathKeys: FINETUNE_PATH_KEYS }) : undefined;
      const values = { ...opts, recipe: undefined, model: args[0] };
      const typed = (key: string) => (key === 'model' ? args[0] !== undefined : command.getOptionValueSource(key) === 'cli');
      const options = resolveFinetuneOptions({ values, typed }, recipe);
      if (flags.verbose) process.stderr.write(`resolved options: ${JSON.stringify(options)}\n`);

      await runTrainingCommand(flags, 'finetune', (hooks) => runFinetune(options, { ...hooks, recipe: recipePath }), formatSummary);
    }),
  );
}

function formatSummary(s: FinetuneSummary): string {
  const loss = (n: number | null) => (n === null ? '-' : n.toFixed(4));
  const memory = s.memoryKind === 'cuda' ? 'GPU' : 'process RSS';
  const rows: [string, string][] = [
    ['train loss', `${loss(s.firstLoss)} → ${loss(s.lastLoss)} (${s.steps} steps, ${s.epochs.toFixed(2)} epochs)`],
    ['eval loss', `${loss(s.evalLoss)}${s.evalExamples ? ` on ${s.evalExamples} examples` : ''}`],
  ];
  if (s.exactMatch) rows.push(['exact match', `${s.exactMatch.before ? formatExact(s.exactMatch.before) : '-'} → ${s.exactMatch.after ? formatExact(s.exactMatch.after) : '-'}`]);
  rows.push(
    ['tokens/s', s.tokensPerSecond === null ? '-' : `${Math.round(s.tokensPerSecond).toLocaleString('en-US')}${s.processes > 1 ? ` (all ${s.processes} processes)` : ''}`],
    ['peak memory', s.processes > 1 ? `${s.peakMemoryPerProcess.map(formatBytes).join(', ')} (${memory}, per process)` : `${formatBytes(s.peakMemoryBytes)} (${memory})`],
    ['time', `${s.trainSeconds.toFixed(1)} s training on ${s.device} (${s.precision}${s.compiled ? ', compiled' : ''})`],
    ['examples', `${s.examples} (${s.truncated} truncated to ${s.maxSeqLen} tokens, ${s.dropped} without an answer left)`],
    ['parameters', `${s.trainableParameters.toLocaleString('en-US')} trained of ${s.totalParameters.toLocaleString('en-US')}`],
  );
  if (s.adapter) rows.push(['adapter', s.adapter]);
  if (s.merged) rows.push(['merged model', s.merged]);
  if (s.modelOut) rows.push(['model', s.modelOut]);
  rows.push(['metrics', s.metrics], ['config', s.config], ['log', s.log]);
  const kind = s.method === 'lora' ? 'LoRA' : 'full';
  return `finetune done (${kind}${s.resumedFrom ? `, resumed from ${s.resumedFrom}` : ''})\n${formatRows(rows)}`;
}
