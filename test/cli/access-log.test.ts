import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { MAX_LINE_BYTES, inTimeOrder, parseAccessRecord, readAccessLog } from '../../proxy/replay/access-log.ts';

const GOOD = {
  time: '2025-03-03T09:00:00+01:00',
  user: 'demo-nurse',
  groups: ['nurses'],
  ip: '10.0.0.1',
  user_agent: '',
  method: 'get',
  host: 'EHR.localhost:8443',
  path: '/fhir/Patient/p-0001?_format=json',
  status: 200,
  bytes: 0,
  extra: { ignored: true },
};

t.test('access record is converted', async (t) => {
  const record = parseAccessRecord(JSON.stringify(GOOD), 7);
  t.same(record, {
    line: 7,
    time: Date.UTC(2025, 2, 3, 8),
    user: 'demo-nurse',
    groups: ['nurses'],
    ip: '10.0.0.1',
    userAgent: '',
    method: 'GET',
    host: 'ehr.localhost',
    target: '/fhir/Patient/p-0001?_format=json',
    status: 200,
    bytes: 0,
  });
  t.same(parseAccessRecord(JSON.stringify({ ...GOOD, label: 'misuse', episode: 'e1', tls_group: 'X25519' }), 1), { ...record, line: 1, label: 'misuse', episode: 'e1', tlsGroup: 'X25519' });
});

const hostile: [string, string, RegExp][] = [
  ['oversized line', `{"user":"${'a'.repeat(MAX_LINE_BYTES)}"}`, /expected at most 65536 bytes, received 65547 bytes/],
  ['truncated JSON', JSON.stringify(GOOD).slice(0, 40), /invalid JSON/],
  ['array', '[1,2]', /expected a JSON object, received an array/],
  ['null', 'null', /expected a JSON object, received null/],
  ['time without zone', JSON.stringify({ ...GOOD, time: '2025-03-03T09:00:00' }), /field "time": expected an ISO 8601 time with a zone/],
  ['impossible date', JSON.stringify({ ...GOOD, time: '2025-13-45T09:00:00Z' }), /field "time"/],
  ['numeric time', JSON.stringify({ ...GOOD, time: 1700000000 }), /field "time": .* received 1700000000/],
  ['missing user', JSON.stringify({ ...GOOD, user: undefined }), /field "user": expected a non-empty string, received nothing \(the field is missing\)/],
  ['empty user', JSON.stringify({ ...GOOD, user: '' }), /field "user": expected a non-empty string, received ""/],
  ['groups of numbers', JSON.stringify({ ...GOOD, groups: [1] }), /field "groups": expected an array of strings/],
  ['method with space', JSON.stringify({ ...GOOD, method: 'GE T' }), /field "method": expected an HTTP method/],
  ['absolute URL path', JSON.stringify({ ...GOOD, path: 'https://x/fhir' }), /field "path": expected a path starting with "\/"/],
  ['status too high', JSON.stringify({ ...GOOD, status: 600 }), /field "status": expected an integer from 100 to 599, received 600/],
  ['fractional bytes', JSON.stringify({ ...GOOD, bytes: 1.5 }), /field "bytes": expected an integer from 0/],
  ['negative bytes', JSON.stringify({ ...GOOD, bytes: -1 }), /field "bytes"/],
  ['empty episode', JSON.stringify({ ...GOOD, episode: '' }), /field "episode": expected a non-empty string when present/],
  ['label case', JSON.stringify({ ...GOOD, label: 'Misuse' }), /field "label": expected "benign" or "misuse", received "Misuse"/],
];

for (const [name, text, message] of hostile) {
  t.test(`access record rejects ${name}`, async (t) => {
    t.throws(() => parseAccessRecord(text, 3), { code: 'WG_REPLAY_INVALID_RECORD', line: 3, message: new RegExp(`^line 3: ${message.source}`) });
  });
}

t.test('records sort by time, then line', async (t) => {
  const at = (line: number, time: string) => parseAccessRecord(JSON.stringify({ ...GOOD, time }), line);
  const sorted = inTimeOrder([at(1, '2025-03-03T10:00:00Z'), at(2, '2025-03-03T09:00:00Z'), at(3, '2025-03-03T10:00:00Z')]);
  t.same(sorted.map((record) => record.line), [2, 1, 3]);
});

t.test('access record time must be a calendar date', async (t) => {
  const invalid: [string, RegExp][] = [
    ['2025-02-30T00:00:00Z', /^line 3: field "time": "2025-02-30T00:00:00Z" is not a valid time \(February 2025 has 28 days\); expected an ISO 8601 time with a zone such as "2025-03-03T09:00:00Z"$/],
    ['2025-02-29T00:00:00Z', /"2025-02-29T00:00:00Z" is not a valid time \(February 2025 has 28 days\)/],
    ['2025-04-31T12:00:00+02:00', /"2025-04-31T12:00:00\+02:00" is not a valid time \(April 2025 has 30 days\)/],
    ['2025-03-03T24:00:00Z', /"2025-03-03T24:00:00Z" is not a valid time \(hour 24 is not 00 to 23\)/],
  ];
  for (const [time, message] of invalid) {
    t.throws(() => parseAccessRecord(JSON.stringify({ ...GOOD, time }), 3), { code: 'WG_REPLAY_INVALID_RECORD', field: 'time', message }, time);
  }

  t.equal(parseAccessRecord(JSON.stringify({ ...GOOD, time: '2024-02-29T23:59:59Z' }), 3).time, Date.UTC(2024, 1, 29, 23, 59, 59), 'a leap day');
});

t.test('access log reader bounds lines in bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wardgate-access-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'access.jsonl');
  const line = (user: string) => JSON.stringify({ ...GOOD, user });
  // 40000 characters but 80000 bytes of UTF-8: over the limit, which counts bytes.
  const wide = line('é'.repeat(40_000));
  // Three lines of about 60 KB bring the next line to the reader's 256 KiB chunk boundary,
  // and the y's are counted so that the two bytes of its "é" fall on either side of it.
  const filler = Array.from({ length: 3 }, () => line('x'.repeat(60_000)));
  const lineStart = Buffer.byteLength([line('first'), wide, '', ...filler].join('\n')) + 1;
  const userStart = line('').indexOf('"user":"') + '"user":"'.length;
  const straddling = line(`${'y'.repeat(256 * 1024 - 1 - lineStart - userStart)}é-end`);
  writeFileSync(file, [line('first'), wide, '', ...filler, `${straddling}\r`, line('last')].join('\n'));

  const log = await readAccessLog(file);

  t.same(log.errors.map((error) => error.message), [`line 2: expected at most ${MAX_LINE_BYTES} bytes, received ${Buffer.byteLength(wide)} bytes`]);
  t.same(log.records.map((record) => record.line), [1, 4, 5, 6, 7, 8], 'the blank line 3 is counted but not a record');
  t.equal(log.records[4]?.user.slice(-5), 'é-end', 'a character split by a chunk boundary is decoded whole');
  t.equal(log.records[5]?.user, 'last', 'a CRLF line end and a last line without a line break are read');
});
