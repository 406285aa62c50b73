import { describe, expect, it } from 'vitest';
import { backendIsListen } from './own-address.js';

const mine = new Set(['127.0.0.1', '::1', '10.0.0.5', 'fd00::5']);

describe('backendIsListen', () => {
  it.each([
    ['http://127.0.0.1:5443', '0.0.0.0:5443', true],
    ['http://localhost:5443', '127.0.0.1:5443', true],
    ['http://10.0.0.5:5443', '0.0.0.0:5443', true],
    ['http://[fd00::5]:5443', '[::]:5443', true],
    ['http://vm:5443', '0.0.0.0:5443', true],
    ['http://0.0.0.0:5443', '0.0.0.0:5443', true],
    ['http://10.0.0.5:80', '0.0.0.0:80', true],
    ['http://127.0.0.1:5000', '0.0.0.0:5443', false],
    ['http://10.0.0.9:5443', '0.0.0.0:5443', false],
    ['http://registry:5443', '0.0.0.0:5443', false],
    ['http://10.0.0.5:5443', '127.0.0.1:5443', false],
  ])('%s with listen %s → %s', (backend, listen, expected) => {
    expect(backendIsListen(backend, listen, mine, 'vm')).toBe(expected);
  });
});
