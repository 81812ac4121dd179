// Worker-thread bootstrap: registers the TypeScript loader in this thread, then runs the engine worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
