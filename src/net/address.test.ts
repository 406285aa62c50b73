import { describe, expect, it } from 'vitest';
import {
  formatHostPort,
  parseHostHeader,
  parseHostPort,
  parseNetwork,
  unbracketHost,
  withDefaultPort,
} from './address.js';

describe('parseNetwork', () => {
  it.each<[string, ReturnType<typeof parseNetwork>]>([
    ['10.0.0.7', { address: '10.0.0.7', prefix: 32, family: 'ipv4' }],
    ['10.0.0.0/8', { address: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['::1', { address: '::1', prefix: 128, family: 'ipv6' }],
    ['fd00::/8', { address: 'fd00::', prefix: 8, family: 'ipv6' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }],
    ['10.0.0.0/33', undefined],
    ['fd00::/129', undefined],
    ['10.0.0.0/', undefined],
    ['10.0.0.0/8/8', undefined],
    ['10.0.0.0/+8', undefined],
    ['lb.example', undefined],
    ['10.0.0.256', undefined],
    ['fe80::1%eth0', undefined],
    ['', undefined],
  ])('%j → %j', (entry, expected) => {
    expect(parseNetwork(entry)).toEqual(expected);
  });
});

describe('parseHostHeader', () => {
  it.each<[string, ReturnType<typeof parseHostHeader>]>([
    ['registry.lan', { host: 'registry.lan' }],
    ['registry.lan:5443', { host: 'registry.lan', port: 5443 }],
    ['10.0.0.5:443', { host: '10.0.0.5', port: 443 }],
    ['[::1]:5443', { host: '::1', port: 5443 }],
    ['[fd00::5]', { host: 'fd00::5' }],
    ['::1', undefined],
    ['registry.lan:', undefined],
    ['registry.lan:123456', undefined],
    ['a b', undefined],
    ['evil/x', undefined],
    ['', undefined],
  ])('%j → %j', (value, expected) => {
    expect(parseHostHeader(value)).toEqual(expected);
  });
});

describe('parseHostPort (listen addresses)', () => {
  it.each<[string, ReturnType<typeof parseHostPort>]>([
    ['0.0.0.0:5443', { host: '0.0.0.0', port: 5443 }],
    [':5443', { host: '0.0.0.0', port: 5443 }],
    ['[::]:5443', { host: '::', port: 5443 }],
    ['registry.lan:80', { host: 'registry.lan', port: 80 }],
    ['[registry.lan]:80', undefined],
    ['10.0.0.1:65536', undefined],
    ['::1:5443', undefined],
    ['5443', undefined],
  ])('%j → %j', (value, expected) => {
    expect(parseHostPort(value)).toEqual(expected);
  });
});

describe('formatting', () => {
  it.each<[string, number, string]>([
    ['fd00::5', 5443, '[fd00::5]:5443'],
    ['10.0.0.5', 443, '10.0.0.5:443'],
    ['registry.lan', 5443, 'registry.lan:5443'],
  ])('formatHostPort(%j, %i) → %j', (host, port, expected) => {
    expect(formatHostPort(host, port)).toBe(expected);
  });

  it('unbrackets only a bracketed host', () => {
    expect(unbracketHost('[::1]')).toBe('::1');
    expect(unbracketHost('127.0.0.1')).toBe('127.0.0.1');
  });

  it.each<[string, string]>([
    ['registry.lan', 'registry.lan:5443'],
    ['registry.lan:80', 'registry.lan:80'],
    ['[::1]', '[::1]:5443'],
    ['[::1]:80', '[::1]:80'],
  ])('withDefaultPort(%j) → %j', (host, expected) => {
    expect(withDefaultPort(host, 5443)).toBe(expected);
  });
});
