// Greedy agreement between two runs of fixed-cache-decode.js (one JSON line per round and batch, same prompts):
// for each row, how many of the first tokens are identical, and how many positions agree.
//   node test/bench/device/token-agreement.js REFERENCE.txt OTHER.txt
import { readFileSync } from 'node:fs';

const [refFile, otherFile] = process.argv.slice(2);
const rows = (file) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
const other = rows(otherFile);
for (const ref of rows(refFile)) {
  const match = other.find((o) => o.round === ref.round && o.batch === ref.batch);
  if (!match) continue;
  ref.tokens.forEach((tokens, b) => {
    const theirs = match.tokens[b];
    const firstDiff = tokens.findIndex((t, i) => t !== theirs[i]);
    const same = tokens.filter((t, i) => t === theirs[i]).length;
    console.log(
      `${otherFile} (${match.device}) vs ${refFile} (${ref.device}), batch ${ref.batch} row ${b}: first ${firstDiff < 0 ? tokens.length : firstDiff} of ${tokens.length} greedy tokens identical, ${same}/${tokens.length} agree`,
    );
  });
}
