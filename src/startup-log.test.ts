import { describe, expect, it } from 'vitest';
import { clientAddresses } from './startup-log.js';

const at = (listen: string, names: string[] = []) => ({ listen, tls: { names } });

describe('clientAddresses', () => {
  it.each([
    {
      what: 'tls.names first, then IPv4 interfaces on 0.0.0.0',
      config: at('0.0.0.0:5443', ['registry.lan']),
      machine: ['10.0.0.5', 'fd00::5', '169.254.3.4'],
      shown: ['registry.lan:5443', '10.0.0.5:5443'],
    },
    {
      what: 'IPv6 too, bracketed, on ::',
      config: at('[::]:5443'),
      machine: ['10.0.0.5', 'fd00::5', 'fe80::1'],
      shown: ['10.0.0.5:5443', '[fd00::5]:5443'],
    },
    {
      what: 'only the bound address when listen names one',
      config: at('10.0.0.7:5443'),
      machine: ['10.0.0.5', '10.0.0.7'],
      shown: ['10.0.0.7:5443'],
    },
    {
      what: 'a name listed once, an address listed as a name once',
      config: at('0.0.0.0:5443', ['10.0.0.5', 'Registry.lan', 'registry.lan']),
      machine: ['10.0.0.5'],
      shown: ['10.0.0.5:5443', 'Registry.lan:5443'],
    },
    {
      what: 'loopback when there is nothing else',
      config: at('0.0.0.0:5443'),
      machine: [],
      shown: ['127.0.0.1:5443'],
    },
  ])('$what', ({ config, machine, shown }) => {
    expect(clientAddresses(config, 5443, machine)).toEqual({ shown, more: 0 });
  });

  it('shows at most four, every tls.names entry among them, and counts the rest', () => {
    const machine = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'];
    expect(clientAddresses(at('0.0.0.0:1', ['a.lan']), 1, machine)).toEqual({
      shown: ['a.lan:1', '10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1'],
      more: 2,
    });
  });
});
