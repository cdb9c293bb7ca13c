import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

import { POLICY_KEYS } from '../../policy/yaml/keys.ts';

const schemaUrl = new URL('../../policy/schema/policy.schema.json', import.meta.url);
const examplesDir = fileURLToPath(new URL('../../policy/examples/', import.meta.url));
const schema = JSON.parse(readFileSync(schemaUrl, 'utf8')) as Record<string, any>;
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
const examples = readdirSync(examplesDir).filter((name) => name.endsWith('.yaml') && !name.endsWith('.tests.yaml'));

/** Property names of the schema object at `path` (JSON Pointer without the leading `#`). */
function schemaKeys(path: string): string[] {
  let node: any = schema;
  for (const part of path.split('/').filter(Boolean)) node = node[part];
  return Object.keys(node.properties as object).sort();
}

t.test('schema keys equal reader keys', async (t) => {
  t.same(schemaKeys(''), [...POLICY_KEYS.top].sort(), 'top level');
  t.same(schemaKeys('/$defs/rule'), [...POLICY_KEYS.rule].sort(), 'rule');
  t.same(schemaKeys('/$defs/match'), [...POLICY_KEYS.match].sort(), 'match');
  t.same(schemaKeys('/$defs/match/properties/time'), [...POLICY_KEYS.time].sort(), 'match.time');
  t.same(schemaKeys('/$defs/rule/properties/step_up'), [...POLICY_KEYS.step_up].sort(), 'step_up');
  t.same(schemaKeys('/$defs/rule/properties/break_glass'), [...POLICY_KEYS.break_glass].sort(), 'break_glass');
});

t.test('schema is draft 2020-12 and closed', async (t) => {
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.equal(schema.additionalProperties, false);
  t.equal(schema.$defs.rule.additionalProperties, false);
  t.equal(schema.$defs.match.additionalProperties, false);
});

t.test('example policies pass the schema', async (t) => {
  t.ok(examples.length >= 2, `examples found: ${examples.join(', ')}`);
  for (const name of examples) {
    const text = readFileSync(`${examplesDir}${name}`, 'utf8');
    t.match(text.split('\n')[0], /^# yaml-language-server: \$schema=\.\.\/schema\/policy\.schema\.json$/, `${name} names the schema`);
    const valid = validate(parse(text));
    t.ok(valid, `${name}: ${JSON.stringify(validate.errors)}`);
  }
});

t.test('schema rejects what the reader rejects', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['unknown top-level key', { version: 1, rules: [], rulez: [] }],
    ['version 2', { version: 2, rules: [] }],
    ['unknown rule key', { version: 1, rules: [{ id: 'a', action: 'allow', acton: 'allow' }] }],
    ['unknown action', { version: 1, rules: [{ id: 'a', action: 'permit' }] }],
    ['step_up without block', { version: 1, rules: [{ id: 'a', action: 'step_up' }] }],
    ['break_glass block on allow', { version: 1, rules: [{ id: 'a', action: 'allow', break_glass: { reason_codes: ['x'] } }] }],
    ['unknown match key', { version: 1, rules: [{ id: 'a', action: 'allow', match: { route: ['ehr'] } }] }],
    ['bad weekday', { version: 1, rules: [{ id: 'a', action: 'allow', match: { time: { days: ['monday'], hours: '07:00-19:00' } } }] }],
    ['bad hours', { version: 1, rules: [{ id: 'a', action: 'allow', match: { time: { hours: '7-19' } } }] }],
    ['rule id default', { version: 1, rules: [{ id: 'default', action: 'allow' }] }],
  ];
  for (const [name, document] of cases) t.notOk(validate(document), name);
});
