/**
 * The devices a model can run on. Kept apart from onnx-runtime.ts so that parsing `--device`
 * does not load onnxruntime-node (the CLI's help and flag checks stay fast).
 */
export const DEVICES = ['auto', 'cpu', 'cuda', 'webgpu'] as const;
export type Device = (typeof DEVICES)[number];
export type Provider = Exclude<Device, 'auto'>;
