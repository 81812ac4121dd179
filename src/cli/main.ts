#!/usr/bin/env node
/** `atelier <command>`: serve, generate, models, make-test-model, parity, bench. */
import { isAtelierError } from '../contract/errors.ts';

const COMMANDS: Record<string, { help: string; run: (argv: string[]) => Promise<void> }> = {
  serve: { help: 'start the HTTP server (queue API, sync API, outputs)', run: async (a) => (await import('./serve.ts')).serveCommand(a) },
  generate: { help: 'generate images from the command line (image-to-image with --image)', run: async (a) => (await import('./generate.ts')).generateCommand(a) },
  models: { help: 'list the checkpoints, LoRAs and embeddings found in a models folder', run: async (a) => (await import('./models.ts')).modelsCommand(a) },
  'make-test-model': { help: 'write a deterministic random SDXL-architecture model (tiny or full size)', run: async (a) => (await import('./make-test-model.ts')).makeTestModelCommand(a) },
  parity: { help: 'compare the engine with a diffusers reference fixture, stage by stage', run: async (a) => (await import('./parity.ts')).parityCommand(a) },
};

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  const entry = cmd ? COMMANDS[cmd] : undefined;
  if (!entry) {
    const list = Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(16)} ${v.help}`).join('\n');
    process.stderr.write(`usage: atelier <command> [flags]\n\ncommands:\n${list}\n`);
    process.exit(cmd && cmd !== 'help' && cmd !== '--help' ? 2 : 0);
  }
  await entry.run(rest);
}

main().catch((e) => {
  if (isAtelierError(e)) {
    process.stderr.write(`atelier: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`atelier: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
