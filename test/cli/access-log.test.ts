import t from 'tap';

import { MAX_LINE_LENGTH, inTimeOrder, parseAccessRecord } from '../../proxy/replay/access-log.ts';

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
  ['oversized line', `{"user":"${'a'.repeat(MAX_LINE_LENGTH)}"}`, /field "\(line\)": expected at most 65536 characters/],
  ['truncated JSON', JSON.stringify(GOOD).slice(0, 40), /field "\(line\)": invalid JSON/],
  ['array', '[1,2]', /field "\(line\)": expected a JSON object, received an array/],
  ['null', 'null', /field "\(line\)": expected a JSON object, received null/],
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
