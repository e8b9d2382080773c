import { UsageError } from '../../shared/errors.js';
import type { GgufType } from '../options/flag-values.js';
import { flagName } from '../options/recipe.js';

/** `export --gguf` and `quantize --gguf`: one GGUF file instead of an ONNX folder. */
export interface GgufTarget {
  gguf: true;
  model: string;
  /** The .gguf file. */
  out: string;
  type: GgufType;
}

/** Flags of the ONNX route that a GGUF file cannot honour: the typed ones named in one error, before any work starts. */
export function rejectOnnxFlags(onnxOnly: string[], typed: (key: string) => boolean, hint: string): void {
  const given = onnxOnly.filter(typed);
  if (given.length > 0) throw new UsageError(`--gguf does not take ${given.map((k) => flagName(k)).join(', ')}`, hint);
}
