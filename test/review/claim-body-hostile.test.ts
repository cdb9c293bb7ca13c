import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { MAX_CLAIM_BYTES, readFields } from '../../proxy/break-glass/body.ts';

function requestOf(contentType: string | undefined, body: string | Buffer): IncomingMessage {
  const stream = new PassThrough() as unknown as IncomingMessage & PassThrough;
  stream.headers = contentType === undefined ? {} : { 'content-type': contentType };
  stream.end(body);
  return stream;
}

const form = 'application/x-www-form-urlencoded';

t.test('form and JSON claims parse', async (t) => {
  t.same(await readFields(requestOf(form, 'offer=a&csrf=b&justification=x%20y')), { fields: { offer: 'a', csrf: 'b', justification: 'x y' }, json: false });
  t.same(await readFields(requestOf('application/json; charset=utf-8', '{"offer":"a","reason_code":"r"}')), { fields: { offer: 'a', reason_code: 'r' }, json: true });
  t.same(await readFields(requestOf('application/json', '{"offer":"a","reason_codes":["r"],"ttl":600}')), { fields: { offer: 'a' }, json: true }, 'members a claim does not read are ignored');
});

t.test('prototype member names are unknown fields', async (t) => {
  const names = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'];
  const body = `offer=a&${names.map((name, index) => `${name}=${index}`).join('&')}&justification=x`;
  const { fields } = await readFields(requestOf(form, body));

  t.equal(fields.offer, 'a');
  t.equal(fields.justification, 'x');
  t.equal(Object.getPrototypeOf(fields), null, 'the form fields inherit nothing');
  names.forEach((name, index) => t.equal(Object.getOwnPropertyDescriptor(fields, name)?.value, String(index), `${name} is kept like any unknown field`));
  await t.rejects(readFields(requestOf(form, 'toString=a&toString=b')), { code: 'WG_BREAK_GLASS_INVALID_BODY', message: 'Form field "toString" appears more than once; send it once.' }, 'a repeated one is still a duplicate');

  const json = await readFields(requestOf('application/json', '{"offer":"a","__proto__":"b","constructor":1,"toString":"c"}'));
  t.same(json, { fields: { offer: 'a' }, json: true }, 'JSON members a claim does not read are ignored');
  t.equal(Object.getPrototypeOf(json.fields), null, 'the JSON fields inherit nothing');
});

const hostile: Array<[string, string | undefined, string | Buffer, string]> = [
  ['missing content type', undefined, 'offer=a', 'Content-Type "" is not accepted; send application/x-www-form-urlencoded or application/json.'],
  ['multipart', 'multipart/form-data; boundary=x', '--x--', 'Content-Type "multipart/form-data" is not accepted; send application/x-www-form-urlencoded or application/json.'],
  ['oversized', form, `justification=${'a'.repeat(MAX_CLAIM_BYTES)}`, `The request body is larger than ${MAX_CLAIM_BYTES} bytes; shorten the justification.`],
  ['duplicate field', form, 'reason_code=a&reason_code=b', 'Form field "reason_code" appears more than once; send it once.'],
  ['truncated JSON', 'application/json', '{"offer":"a",', 'The request body is not valid JSON; send an object such as {"offer":"...","csrf":"...","reason_code":"...","justification":"..."}.'],
  ['JSON array', 'application/json', '["a"]', 'The JSON body must be an object with string fields offer, csrf, reason_code and justification.'],
  ['JSON null', 'application/json', 'null', 'The JSON body must be an object with string fields offer, csrf, reason_code and justification.'],
  ['JSON number field', 'application/json', '{"justification":12}', 'JSON field "justification" must be a string, received number.'],
  ['JSON nested field', 'application/json', '{"reason_code":["a","b"]}', 'JSON field "reason_code" must be a string, received object.'],
];

for (const [name, type, body, message] of hostile) {
  t.test(`rejects ${name}`, async (t) => {
    await t.rejects(readFields(requestOf(type, body)), { code: 'WG_BREAK_GLASS_INVALID_BODY', status: 400, message });
  });
}
