// Greedy agreement between two engine-gpu.js runs (their last line, JSON): how many of the first
// tokens match, e.g. fp16 or int4 against fp32 on the same device.
//   node test/bench/device/agreement.js REF.txt REF_DEVICE OTHER.txt OTHER_DEVICE
import { readFileSync } from 'node:fs';

const [refFile, refDevice, otherFile, otherDevice] = process.argv.slice(2);
const tokensOf = (file, device) => {
  const results = JSON.parse(readFileSync(file, 'utf8').trim().split('\n').at(-1));
  return results.find((r) => r.device === device).tokens;
};
const ref = tokensOf(refFile, refDevice);
const other = tokensOf(otherFile, otherDevice);
const firstDiff = ref.findIndex((t, i) => t !== other[i]);
const same = ref.filter((t, i) => t === other[i]).length;
console.log(`${otherFile} vs ${refFile}: first ${firstDiff < 0 ? ref.length : firstDiff} of ${ref.length} greedy tokens identical, ${same}/${ref.length} positions agree`);
