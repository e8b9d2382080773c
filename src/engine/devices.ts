import { UsageError } from '../shared/errors.js';

/**
 * The devices a model can run on. Kept apart from onnx-runtime.ts so that parsing `--device`
 * does not load onnxruntime-node (the CLI's help and flag checks stay fast).
 */
export const DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];
export type Provider = Exclude<Device, 'auto'>;

export function parseDevice(value: string): Device {
  if ((DEVICES as readonly string[]).includes(value)) return value as Device;
  throw new UsageError(`--device must be one of ${DEVICES.join(', ')} (got ${value})`);
}
