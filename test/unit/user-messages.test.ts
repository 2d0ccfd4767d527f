import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TerminalError } from '../../src/errors.ts';
import { newCorrelationId } from '../../src/provisioning/correlation-id.ts';
import { userFailureMessage } from '../../src/provisioning/step.ts';
import {
  FAILURE_REASONS,
  MAX_USER_MESSAGE_LENGTH,
  userMessageFor,
  type FailureReason,
  type MessageDetails,
} from '../../src/user-messages.ts';

/** The longest names the length budget allows for: 40 characters each. */
const LONG = 'x'.repeat(40);
const DETAIL_SHAPES: readonly MessageDetails[] = [
  {},
  { profile: LONG },
  { profile: LONG, connection: LONG },
  { connection: LONG },
  { profile: LONG, field: 'subject SERIALNUMBER' },
  { holder: 'user session' },
];

describe('the user-message catalog', () => {
  it('covers the closed FailureReason set, every reason once', () => {
    const all: Record<FailureReason, true> = {
      key_policy: true,
      unknown_ca_connection: true,
      unknown_profile: true,
      unsupported_process: true,
      template_field_missing: true,
      template_invalid_value: true,
      bad_signature: true,
      signature_timeout: true,
      device_refused: true,
      ca_rejected: true,
      ca_timeout: true,
      ca_misbehaved: true,
      chrome_rejected: true,
      retries_exhausted: true,
      internal: true,
    };
    expect([...FAILURE_REASONS].sort()).toEqual(Object.keys(all).sort());
  });

  it.each(FAILURE_REASONS)(
    '"%s" has a message that fits the notification with its reference, whatever names it shows',
    (reason) => {
      for (const details of DETAIL_SHAPES) {
        const shown = userFailureMessage(userMessageFor(reason, details), newCorrelationId());
        expect(shown.length, shown).toBeLessThanOrEqual(MAX_USER_MESSAGE_LENGTH);
        expect(userMessageFor(reason, details)).toMatch(/^[A-Z].*\.$/);
      }
    },
  );

  it('names the profile and the field where it knows them', () => {
    expect(userMessageFor('template_invalid_value', { profile: 'wifi', field: 'subject CN' })).toBe(
      'The certificate profile "wifi" produced an invalid subject CN. Ask your administrator to check the profile.',
    );
    expect(userMessageFor('unknown_profile', { profile: 'wifi', connection: 'corp' })).toBe(
      'The certificate profile "wifi" cannot be used with CA connection "corp". Ask your administrator.',
    );
    expect(userMessageFor('template_field_missing', { holder: 'user session' })).toContain('this user session');
  });

  it('is what a TerminalError carries unless the thrower refines it', () => {
    expect(new TerminalError('detail for the log', { reason: 'bad_signature' }).userMessage).toBe(
      userMessageFor('bad_signature'),
    );
    const refined = new TerminalError('order 7 rejected', {
      reason: 'ca_rejected',
      userMessage: 'The certificate authority rejected the certificate request.',
    });
    expect(refined.userMessage).toBe('The certificate authority rejected the certificate request.');
  });

  it('leaves no user wording in src/pki (crypto code returns reasons, not sentences)', () => {
    const dir = path.resolve(import.meta.dirname, '../../src/pki');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(path.join(dir, file), 'utf8');
      expect(source, file).not.toMatch(/userMessage|Ask your administrator|Try again/);
    }
  });
});
