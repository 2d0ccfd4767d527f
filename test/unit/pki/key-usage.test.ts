import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../../src/errors.ts';
import { defaultKeyUsages, keyTypesFor, keyUsagesForDevice } from '../../../src/pki/key-usage.ts';
import type { KeyType, LeafKeyUsage } from '../../../src/pki/types.ts';

describe('keyUsage per device key type', () => {
  it("defaults to today's choice: EC digitalSignature, RSA digitalSignature + keyEncipherment", () => {
    expect(keyUsagesForDevice('p', undefined, 'ec')).toEqual(['digitalSignature']);
    expect(keyUsagesForDevice('p', undefined, 'rsa')).toEqual(['digitalSignature', 'keyEncipherment']);
    expect(defaultKeyUsages('ec')).toEqual(['digitalSignature']);
  });

  it.each<[LeafKeyUsage[], KeyType[]]>([
    [['digitalSignature'], ['rsa', 'ec']],
    [
      ['digitalSignature', 'nonRepudiation'],
      ['rsa', 'ec'],
    ],
    [['digitalSignature', 'keyEncipherment'], ['rsa']],
    [['dataEncipherment'], ['rsa']],
    [['digitalSignature', 'keyAgreement'], ['ec']],
    [['keyEncipherment', 'keyAgreement'], []],
    [['dataEncipherment', 'keyAgreement'], []],
  ])('%j can be carried by %j keys', (usages, types) => {
    expect(keyTypesFor(usages)).toEqual(types);
    for (const type of ['rsa', 'ec'] as const) {
      if (types.includes(type)) expect(keyUsagesForDevice('p', usages, type)).toEqual(usages);
      else expect(() => keyUsagesForDevice('p', usages, type)).toThrow(TerminalError);
    }
  });

  it('a misfit fails the process as key_policy, naming the profile, the field and the bit', () => {
    let error: unknown;
    try {
      keyUsagesForDevice('wifi_user', ['digitalSignature', 'keyEncipherment'], 'ec');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TerminalError);
    const terminal = error as TerminalError;
    expect(terminal.reason).toBe('key_policy');
    expect(terminal.message).toContain('profiles.wifi_user.keyUsages');
    expect(terminal.message).toContain('keyEncipherment needs an RSA key');
    expect(terminal.userMessage).toContain('"wifi_user"');
  });
});
