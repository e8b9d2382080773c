import { UsageError } from '../../shared/errors.js';
import { TRITON_DEVICES, TRITON_NAME, type TritonDevice } from '../options/flag-values.js';
import type { TritonTarget } from './repository.js';
import type { OptionSpec } from '../options/define.js';
import { textField } from '../options/fields.js';

/** `--triton DIR` and its companions, shared by `export` and `quantize` (last in their --help). */
export const TRITON_OPTIONS = {
  triton: {
    field: textField(),
    value: '<dir>',
    help: 'also write a Triton Inference Server model repository there: the decoder (onnxruntime backend) and <name>-generate (Python backend, streaming)',
  },
  tritonName: { field: textField(), value: '<name>', help: "the decoder's model name in Triton", defaultHelp: "the --out folder's name" },
  // Checked in tritonTarget, after whether --triton is there at all: that is the mistake to name first.
  tritonDevice: { field: textField(), value: '<kind>', help: `instance group of the Triton models: ${TRITON_DEVICES.join(' (KIND_CPU) or ')} (KIND_GPU)`, defaultHelp: 'cpu' },
} satisfies Record<string, OptionSpec>;

/** The repository to write, or undefined without --triton. */
export function tritonTarget(o: { triton?: string; tritonName?: string; tritonDevice?: string }): TritonTarget | undefined {
  if (!o.triton) {
    if (o.tritonName || o.tritonDevice) throw new UsageError('--triton-name and --triton-device go with --triton DIR');
    return undefined;
  }
  const device = o.tritonDevice ?? 'cpu';
  if (!isTritonDevice(device)) throw new UsageError(`--triton-device must be one of ${TRITON_DEVICES.join(', ')} (got ${device})`);
  if (o.tritonName !== undefined && !TRITON_NAME.test(o.tritonName)) {
    throw new UsageError(`--triton-name ${o.tritonName} is not a name Triton accepts`, 'use letters, digits, ".", "_" and "-", starting with a letter or digit');
  }
  return { out: o.triton, name: o.tritonName, device };
}

function isTritonDevice(value: string): value is TritonDevice {
  return (TRITON_DEVICES as readonly string[]).includes(value);
}
