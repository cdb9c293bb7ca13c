import t from 'tap';

import { IdentityError } from '../../proxy/identity/errors.ts';
import { assertReturnTo } from '../../proxy/identity/return-to.ts';

t.test('same-origin paths are accepted', async (t) => {
  for (const path of ['/', '/chart/123', '/search?q=a%2Fb&x=1', '/a/b?next=https://x', '/path#frag']) {
    t.equal(assertReturnTo(path), path, path);
  }
});

t.test('hostile return targets are rejected', async (t) => {
  const hostile: unknown[] = [
    '//evil.example',
    '//evil.example/path',
    '/\\evil.example',
    '\\\\evil.example',
    '/\\/evil.example',
    'https://evil.example/',
    'http:evil.example',
    'javascript:alert(1)',
    'evil.example',
    '',
    '/\t/evil.example',
    '/\r\n//evil.example',
    '/%2F%2Fevil.example',
    '/%2f/evil.example',
    '/%5Cevil.example',
    '/%09/evil.example',
    '/%0d%0aSet-Cookie:x=1',
    '/%252F%252Fevil.example',
    '/caf\u00e9',
    '/ space',
    `/${'a'.repeat(3000)}`,
    '/\n/evil.example',
    '/\r/evil.example',
    '/\t\t//evil.example',
    '/ /evil.example',
    '/\u00a0/evil.example',
    '/./evil.example',
    '/.//evil.example',
    '/../evil.example',
    '/a/..//evil.example',
    '/%2e/evil.example',
    '/%2E%2E//evil.example',
    '/%20/evil.example',
    '/%0a/evil.example',
    '/%0D/evil.example',
    '/%5c%5cevil.example',
    '/%2F%5Cevil.example',
    '//user@evil.example',
    '//user:pass@evil.example/',
    'https://user@localhost/',
    '/\\user@evil.example',
    '//localhost:8443/',
    '//evil.example:443',
    'https://localhost:9999/',
    '/%2F%2Flocalhost:9999',
    42,
    null,
    undefined,
    ['/'],
  ];
  for (const value of hostile) {
    t.throws(() => assertReturnTo(value), { code: 'WG_AUTH_INVALID_RETURN_TO', status: 400 }, JSON.stringify(value)?.slice(0, 40) ?? String(value));
  }
});

t.test('message names the parameter', async (t) => {
  try {
    assertReturnTo('//evil.example');
    t.fail('expected an error');
  } catch (error) {
    t.ok(error instanceof IdentityError);
    t.equal((error as IdentityError).message, 'Query parameter "return_to" must be a path starting with a single "/", received "//evil.example". Link to the sign-in page with a path on this site.');
  }
});
