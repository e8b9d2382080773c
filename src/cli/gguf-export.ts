import type { GgufTarget } from '../core/gguf/options.js';
import { runJobCommand } from './job-run.js';
import { formatBytes, type GlobalFlags } from './output.js';

/** `export --gguf` and `quantize --gguf`: one GGUF file, with progress and the one-line summary (or --json). */
export async function writeGgufFile(command: 'export' | 'quantize', target: GgufTarget, flags: GlobalFlags): Promise<void> {
  const { exportGguf } = await import('../core/gguf/export.js');
  await runJobCommand(
    flags,
    `${command} --gguf`,
    (hooks) => exportGguf({ ...target, ...hooks }),
    (report) => `${command === 'export' ? 'exported' : 'quantized'} ${target.model} → ${report.path} (GGUF ${report.architecture}, ${report.type}, ${formatBytes(report.bytes)})`,
  );
}
