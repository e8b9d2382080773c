#!/usr/bin/env node
import { relaunchWithCudaLibraries } from '../dist/engine/cuda-libraries.js';

// On machines where `llmkit env --setup --cuda` recorded CUDA library folders, the CLI runs as a child
// that has them on the loader path (see src/engine/cuda-libraries.ts).
const relaunched = relaunchWithCudaLibraries(process.argv);
const code = relaunched ? await relaunched : await (await import('../dist/cli/main.js')).main(process.argv);
process.exitCode = code;
