// Command line of the engine bench scripts: one exported-model folder and `--name value` flags.
export function modelArgs(usage) {
  const args = process.argv.slice(2);
  const folder = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
  if (!folder) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  const flag = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
  };
  return { folder, flag };
}
