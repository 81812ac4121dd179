import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthFailureLimiter } from './auth-failures.ts';
import { parseRateLimit } from './config.ts';

describe('AuthFailureLimiter', () => {
  it('blocks an address for one window from the failure that reaches the limit, then starts afresh', () => {
    let t = 1000;
    const l = new AuthFailureLimiter(parseRateLimit('10/min'), () => t);
    for (let i = 0; i < 9; i++) l.fail('a');
    l.check('a');
    l.fail('a'); // tenth
    assert.throws(() => l.check('a'), (e: any) => e.code === 'RATE_LIMITED' && e.retryAfterSeconds === 60);
    l.check('b'); // other addresses are not affected
    t += 30;
    assert.throws(() => l.check('a'), (e: any) => e.retryAfterSeconds === 30);
    t += 30;
    l.check('a'); // the window passed
    l.fail('a');
    l.check('a'); // counting starts again from one
  });

  it('failures spread over more than a window do not add up', () => {
    let t = 0;
    const l = new AuthFailureLimiter(parseRateLimit('3/min'), () => t);
    l.fail('a');
    l.fail('a');
    t = 61;
    l.fail('a');
    l.fail('a');
    l.check('a');
    l.fail('a');
    assert.throws(() => l.check('a'));
  });
});
