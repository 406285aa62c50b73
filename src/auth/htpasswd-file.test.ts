import { describe, expect, it } from 'vitest';
import { parseHtpasswd } from './htpasswd-file.js';

const BCRYPT = '$2y$05$XcyMwqO76wYmKUQBnSr7OOg/t2uIwLf8SVq9XLqwgPx3YDxcjMgrm';

describe('parseHtpasswd', () => {
  it('reads bcrypt entries, skipping blank lines and comments', () => {
    const parsed = parseHtpasswd(
      `# users\nalice:${BCRYPT}\n\nbob:${BCRYPT.replace('$2y$', '$2b$')}\r\n`,
    );
    expect('users' in parsed && [...parsed.users.keys()]).toEqual(['alice', 'bob']);
  });

  it.each([
    ['alice:$apr1$abcdefgh$0123456789abcdefghijkl', /Apache MD5 \(\$apr1\$\)/],
    ['alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1 \(\{SHA\}\)/],
    ['alice:$6$salt$hash', /crypt\(3\) \$6\$/],
    ['alice:abCDefGHijKLm', /DES crypt/],
    ['alice:hunter2', /plain text/],
    ['alice:$2y$05$short', /malformed bcrypt/],
  ])('refuses %s with its line and the htpasswd -B advice', (line, kind) => {
    const parsed = parseHtpasswd(`# first\n${line}\n`);
    expect(parsed.problems).toHaveLength(1);
    expect(parsed.problems[0]?.line).toBe(2);
    expect(parsed.problems[0]?.message).toMatch(kind);
    expect(parsed.problems[0]?.message).toContain('htpasswd -B FILE alice');
    // The hash itself is never repeated in a message (it ends up in logs).
    expect(parsed.problems[0]?.message).not.toContain(line.split(':')[1]);
  });

  it('lists every bad line, a repeated user and a line without a colon', () => {
    const parsed = parseHtpasswd(`a:${BCRYPT}\na:${BCRYPT}\nnocolon\nc:plain\n`);
    expect(parsed.problems.map((p) => p.line)).toEqual([2, 3, 4]);
  });

  it('refuses a file with no users', () => {
    expect(parseHtpasswd('# nobody\n').problems[0]?.message).toMatch(/no users/);
  });
});
