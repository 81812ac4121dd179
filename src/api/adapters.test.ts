import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { adapterDirs, resolveLocalAdapter } from './adapters.ts';
import { tempDir } from './test-support.ts';

const tmp = tempDir();
after(() => tmp.remove());

// A ComfyUI-like models folder with one LoRA, a sub-folder, and a symlink that leads out.
const models = path.join(tmp.dir, 'models-root');
fs.mkdirSync(path.join(models, 'models', 'loras', 'styles'), { recursive: true });
fs.mkdirSync(path.join(models, 'models', 'embeddings'), { recursive: true });
fs.writeFileSync(path.join(models, 'models', 'loras', 'pixel.safetensors'), 'x');
fs.writeFileSync(path.join(models, 'models', 'loras', 'styles', 'ink.safetensors'), 'x');
fs.writeFileSync(path.join(tmp.dir, 'secret.safetensors'), 'x');
fs.symlinkSync(path.join(tmp.dir, 'secret.safetensors'), path.join(models, 'models', 'loras', 'escape.safetensors'));

describe('local adapter names', () => {
  const dirs = adapterDirs(models);
  const resolve = (name: string) => resolveLocalAdapter(name, dirs.loras, 'loras.0.path', 'LoRA');

  it('finds the A1111 / ComfyUI folders', () => {
    assert.deepEqual(dirs.loras, [fs.realpathSync(path.join(models, 'models', 'loras'))]);
    assert.equal(dirs.embeddings.length, 1);
  });

  it('resolves names with or without the extension, and in sub-folders', () => {
    assert.equal(resolve('pixel'), fs.realpathSync(path.join(models, 'models', 'loras', 'pixel.safetensors')));
    assert.equal(resolve('pixel.safetensors'), resolve('pixel'));
    assert.match(resolve('styles/ink'), /styles\/ink\.safetensors$/);
  });

  it('nothing escapes the folder: .., absolute paths, symlinks out, schemes', () => {
    for (const [name, why] of [
      ['../../secret', /contains "\.\."/],
      ['styles/../../x', /contains "\.\."/],
      ['/etc/passwd', /absolute path/],
      ['escape', /outside the LoRA folder/],
      ['file:///etc/passwd', /URL scheme/],
      ['a\\b', /backslash/],
    ] as const) {
      assert.throws(() => resolve(name), (e: any) => e.code === 'INVALID_INPUT' && e.field === 'loras.0.path' && why.test(e.message), name);
    }
  });

  it('unknown names are ADAPTER_INVALID; discovered names win', () => {
    assert.throws(() => resolve('missing'), (e: any) => e.code === 'ADAPTER_INVALID' && /no LoRA named "missing"/.test(e.message));
    const known = new Map([['flat-one', '/somewhere/flat-one.safetensors']]);
    assert.equal(resolveLocalAdapter('flat-one', [], 'loras.0.path', 'LoRA', known), '/somewhere/flat-one.safetensors');
    assert.throws(() => resolveLocalAdapter('x', [], 'loras.0.path', 'LoRA'), /no LoRA folder/);
  });
});
