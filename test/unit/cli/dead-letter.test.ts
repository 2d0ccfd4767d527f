import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/command.ts';
import { deadLetterCommand } from '../../../src/cli/dead-letter.ts';

describe('certprov dead-letter: usage', () => {
  it.each([
    [[], /expected the action "replay"/],
    [['purge'], /expected the action "replay", got "purge"/],
    [['replay', '--topic', 't'], /--subscription \(the dead-letter subscription\) and --topic are required/],
    [['replay', '--subscription', 's', '--topic', 't'], /--subscription: give a full name or --project P/],
    [
      ['replay', '--project', 'p', '--subscription', 'projects/p/topics/x', '--topic', 't'],
      /is not projects\/P\/subscriptions\/NAME/,
    ],
    [['replay', '--project', 'p', '--subscription', 's', '--topic', 'a/b'], /--topic: "a\/b" is neither an id nor/],
    [
      ['replay', '--project', 'p', '--subscription', 's', '--topic', 't', '--limit', '0'],
      /--limit must be a whole number/,
    ],
    [
      ['replay', '--project', 'p', '--subscription', 's', '--topic', 't', '--limit', '2.5'],
      /--limit must be a whole number/,
    ],
    [
      ['replay', '--project', 'p', '--subscription', 's', '--topic', 't', '--pull-timeout', '10'],
      /--pull-timeout takes a duration/,
    ],
    [
      ['replay', '--project', 'p', '--subscription', 's', '--topic', 't', '--pull-timeout', '0s'],
      /--pull-timeout takes a duration/,
    ],
    [['replay', '--bogus'], /Unknown option '--bogus'/],
  ])('%j is a usage error', async (args, message) => {
    const run = deadLetterCommand.run(args);
    await expect(run).rejects.toBeInstanceOf(UsageError);
    await expect(run).rejects.toThrow(message);
  });

  it('--help says what is republished and when a message is acknowledged', () => {
    expect(deadLetterCommand.help).toContain('--dry-run');
    expect(deadLetterCommand.help).toContain('--limit N');
    expect(deadLetterCommand.help).toMatch(/--pull-timeout D .*\n.*\(default 10s;/);
    expect(deadLetterCommand.help).toContain(
      'acknowledged on the dead-letter subscription only after its publish succeeded',
    );
  });
});
