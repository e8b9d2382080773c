import type { Command } from 'commander';
import { UsageError } from '../shared/errors.js';
import { TRITON_DEVICES, TRITON_NAME, type TritonDevice } from '../core/choices.js';
import type { TritonRepository, TritonTarget } from '../core/triton-repository.js';

export interface TritonFlags {
  triton?: string;
  tritonName?: string;
  tritonDevice?: string;
}

/** `--triton DIR` and its companions, shared by `export` and `quantize`. */
export function withTritonOptions(command: Command): Command {
  return command
    .option('--triton <dir>', 'also write a Triton Inference Server model repository there: the decoder (onnxruntime backend) and <name>-generate (Python backend, streaming)')
    .option('--triton-name <name>', "the decoder's model name in Triton (default: the --out folder's name)")
    .option('--triton-device <kind>', `instance group of the Triton models: ${TRITON_DEVICES.join(' (KIND_CPU) or ')} (KIND_GPU)`);
}

/** The repository to write, or undefined without --triton; every mistake is reported before any work starts. */
export function parseTritonFlags(flags: TritonFlags): TritonTarget | undefined {
  if (!flags.triton) {
    if (flags.tritonName || flags.tritonDevice) throw new UsageError('--triton-name and --triton-device go with --triton DIR');
    return undefined;
  }
  const device = flags.tritonDevice ?? 'cpu';
  if (!(TRITON_DEVICES as readonly string[]).includes(device)) throw new UsageError(`--triton-device must be one of ${TRITON_DEVICES.join(', ')} (got ${device})`);
  if (flags.tritonName !== undefined && !TRITON_NAME.test(flags.tritonName)) {
    throw new UsageError(`--triton-name ${flags.tritonName} is not a name Triton accepts`, 'use letters, digits, ".", "_" and "-", starting with a letter or digit');
  }
  return { out: flags.triton, name: flags.tritonName, device: device as TritonDevice };
}

/** What the commands print about the repository they wrote. */
export function tritonLine(r: TritonRepository): string {
  return `Triton repository → ${r.path}: ${r.decoder} (onnxruntime, ${r.checkedTensors} tensors checked against the ONNX file), ${r.generate} (python, decoupled), KIND_${r.device.toUpperCase()}\n`;
}
