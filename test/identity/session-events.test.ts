import { randomBytes } from 'node:crypto';

import t from 'tap';

import { encodeSessionEvent, parseSessionEvent } from '../../proxy/identity/session-events.ts';

const id = randomBytes(32).toString('base64url');
const other = randomBytes(32).toString('base64url');

t.test('well-formed events round-trip', async (t) => {
  t.same(parseSessionEvent(encodeSessionEvent({ ended: [id, other] })), { ended: [id, other] });
  t.same(parseSessionEvent(encodeSessionEvent({ ended: [] })), { ended: [] });
  t.same(parseSessionEvent(encodeSessionEvent({ renamed: { from: id, to: other } })), { renamed: { from: id, to: other } });
});

t.test('hostile events are rejected', async (t) => {
  const cases: [string, string][] = [
    ['empty message', ''],
    ['truncated JSON', encodeSessionEvent({ ended: [id] }).slice(0, -3)],
    ['JSON null', 'null'],
    ['JSON array', JSON.stringify([id])],
    ['JSON string', JSON.stringify(id)],
    ['empty object', '{}'],
    ['unknown member', JSON.stringify({ closed: [id] })],
    ['two members', JSON.stringify({ ended: [id], renamed: { from: id, to: other } })],
    ['ended not a list', JSON.stringify({ ended: id })],
    ['ended with a number', JSON.stringify({ ended: [id, 7] })],
    ['ended with a short id', JSON.stringify({ ended: [id, id.slice(1)] })],
    ['ended with a long id', JSON.stringify({ ended: [`${id}A`] })],
    ['ended with a key pattern', JSON.stringify({ ended: ['*'.repeat(43)] })],
    ['renamed without to', JSON.stringify({ renamed: { from: id } })],
    ['renamed with a bad from', JSON.stringify({ renamed: { from: 'session:x', to: other } })],
    ['renamed not an object', JSON.stringify({ renamed: `${id}:${other}` })],
    ['renamed null', JSON.stringify({ renamed: null })],
  ];
  for (const [name, message] of cases) {
    t.equal(parseSessionEvent(message), null, name);
  }
});

t.test('duplicate members keep the last', async (t) => {
  // JSON.parse keeps the last of duplicated names, so the message still has one member.
  t.same(parseSessionEvent(`{"ended":["${id}"],"ended":["${other}"]}`), { ended: [other] });
});
