import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { adapterDirs } from './adapters.ts';
import { tempDir } from './test-support.ts';

const tmp = tempDir();
after(() => tmp.remove());

// A ComfyUI-like models folder with one LoRA. (Names are resolved in these folders by jobs/adapter-sources.ts:
// its test covers resolution and escapes.)
const models = path.join(tmp.dir, 'models-root');
fs.mkdirSync(path.join(models, 'models', 'loras', 'styles'), { recursive: true });
fs.mkdirSync(path.join(models, 'models', 'embeddings'), { recursive: true });
fs.writeFileSync(path.join(models, 'models', 'loras', 'pixel.safetensors'), 'x');

describe('local adapter names', () => {
  const dirs = adapterDirs(models);

  it('finds the A1111 / ComfyUI folders', () => {
    assert.deepEqual(dirs.loras, [fs.realpathSync(path.join(models, 'models', 'loras'))]);
    assert.equal(dirs.embeddings.length, 1);
  });
});
