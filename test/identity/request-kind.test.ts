import type { IncomingMessage } from 'node:http';

import t from 'tap';

import { wantsHtml } from '../../proxy/enforce/responses.ts';
import { isApiClient } from '../../proxy/identity/request-kind.ts';

function requestWith(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

// Each case: Accept and Authorization headers, and whether the request counts as a browser's.
const CASES: [string, Record<string, string>, boolean][] = [
  ['a browser navigation', { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }, true],
  ['Accept in upper case', { accept: 'TEXT/HTML' }, true],
  ['a script with */*', { accept: '*/*' }, false],
  ['a FHIR client', { accept: 'application/fhir+json' }, false],
  ['no Accept header', {}, false],
  ['a bearer token with text/html', { accept: 'text/html', authorization: 'Bearer abc' }, false],
  ['an empty Authorization header', { accept: 'text/html', authorization: '' }, false],
  ['text/html refused with q=0', { accept: 'text/html;q=0, application/json' }, false],
  ['text/html with a low quality', { accept: 'application/json, text/html; q=0.1' }, true],
  ['a longer media type', { accept: 'text/htmlfoo' }, false],
];

t.test('browsers and API clients are told apart by Accept and Authorization', async (t) => {
  for (const [name, headers, browser] of CASES) {
    const req = requestWith(headers);
    t.equal(isApiClient(req), !browser, `${name}: sign-in and step-up ${browser ? 'redirect' : 'answer 401'}`);
    t.equal(wantsHtml(req), browser, `${name}: errors come as ${browser ? 'HTML' : 'JSON'}`);
  }
});
