/**
 * Child-process entry for tests that need a real server process (kill -9, SIGTERM): the real `serve`
 * code path, with the engine from test-support.ts. Flags as for `atelier serve`.
 */
import { serveCommand } from '../cli/serve.ts';
import { createTestEngine } from './test-support.ts';

await serveCommand(process.argv.slice(2), {
  createEngine: () => createTestEngine({ stepMs: Number(process.env.ATELIER_TEST_STEP_MS ?? 5) }),
  defaultTestModel: async () => '(built-in test engine)',
});
