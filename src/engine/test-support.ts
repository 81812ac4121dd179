/** Test support: open a checkpoint the way the engine does, with test-sized settings. */
import { engineSettings, type EngineSettings } from '../contract/settings.ts';
import { openModel, type LoadedModel, type ModelTuning } from './model-manager.ts';

/** `source` opened with 2 threads, caches under `<dataDir>/cache`, and any other setting given. */
export function openTestModel(source: string | { path: string; config?: string }, dataDir: string, settings: Partial<EngineSettings> = {}, tuning: ModelTuning = {}): Promise<LoadedModel> {
  const entry = typeof source === 'string' ? { name: 'test', path: source } : { name: 'test', ...source };
  return openModel(entry, engineSettings({ models: [entry], dataDir, threads: 2, ...settings }), tuning);
}
