import { parse } from '@bufbuild/cel';
import t from 'tap';

import { compileNative } from '../../policy/cel/native.ts';
import { buildBindings } from '../../policy/cel/variables.ts';
import { compilePolicy } from '../../policy/index.ts';
import { MAX_QUERY_PARAMS, queryParameterNames } from '../../policy/query-parameter-names.ts';
import { makeContext } from './helpers.ts';

const DEMOGRAPHIC_SEARCH = 'request.path == "/fhir/Patient" && request.query_params.exists(p, p in ["name", "family", "given", "birthdate", "phone", "telecom", "address", "identifier"])';

const POLICY = `version: 1
rules:
  - id: demographic-search
    when: ${JSON.stringify(DEMOGRAPHIC_SEARCH)}
    action: notify
    reason: Patient search by demographics.
  - id: count-without-family
    when: "'_count' in request.query_params && !('family' in request.query_params)"
    action: block
  - id: many-params
    when: "size(request.query_params) > 3"
    action: block
  - id: rest
    action: allow
`;

const policy = compilePolicy(POLICY, 'query-params.yaml');

/** Decides a request to `path` whose query parameter names are `query` decoded as the proxy decodes them. */
function ruleFor(path: string, query: string): string {
  return policy.decide(makeContext({ request: { path, queryParams: queryParameterNames(query) } })).rule;
}

t.test('names decoded without values', async (t) => {
  t.same(queryParameterNames('family=Smith&given=Ann'), ['family', 'given']);
  t.same(queryParameterNames('fam%69ly=Smith&birth+date=1970'), ['family', 'birth date'], 'percent escapes and + decoded');
  t.same(queryParameterNames('_summary&_count=10'), ['_summary', '_count'], 'a name without =');
});

t.test('names keep no values', async (t) => {
  const names = queryParameterNames('family=Zebulon&given=Quintessa&birthdate=1970-01-01');

  t.notOk(names.some((name) => name.includes('Zebulon')), 'family value absent');
  t.notOk(JSON.stringify(names).includes('Quintessa'), 'given value absent');
  t.notOk(JSON.stringify(names).includes('1970'), 'birthdate value absent');
});

t.test('FHIR modifiers stripped', async (t) => {
  t.same(queryParameterNames('name:contains=Smi'), ['name']);
  t.same(queryParameterNames('family:exact=Smith&given:text=Ann'), ['family', 'given']);
  t.same(queryParameterNames('subject:Patient.name=Smith'), ['subject.name'], 'modifier inside a chain');
  t.same(queryParameterNames('subject.name:contains=Smi'), ['subject.name'], 'modifier at the end of a chain');
  t.same(queryParameterNames('name%3Acontains=Smi'), ['name'], 'encoded colon');
  t.same(queryParameterNames(':contains=x&=y&&'), [], 'empty names skipped');
});

t.test('duplicates removed in order', async (t) => {
  t.same(queryParameterNames('given=A&family=B&given=C&name:exact=D&name=E&family:contains=F'), ['given', 'family', 'name']);
});

t.test('empty query gives empty list', async (t) => {
  t.same(queryParameterNames(''), []);
});

t.test('names capped at 32', async (t) => {
  const query = Array.from({ length: 40 }, (_, index) => `p${index}=v`).join('&');
  const names = queryParameterNames(query);

  t.equal(MAX_QUERY_PARAMS, 32);
  t.equal(names.length, 32);
  t.equal(names[0], 'p0');
  t.equal(names[31], 'p31', 'the first 32 names are kept');
  t.notOk(names.includes('p32'), 'later names are dropped');
});

t.test('duplicates do not count toward the cap', async (t) => {
  const repeated = Array.from({ length: 100 }, () => 'family=x').join('&');
  const names = queryParameterNames(`${repeated}&given=y`);

  t.same(names, ['family', 'given']);
});

t.test('policy rules read query_params', async (t) => {
  t.equal(ruleFor('/fhir/Patient', 'family=Smith&given=Ann'), 'demographic-search');
  t.equal(ruleFor('/fhir/Patient', 'name:contains=Smi'), 'demographic-search', 'modifier stripped before the rule sees it');
  t.equal(ruleFor('/fhir/Patient', 'birthdate=1970-01-01'), 'demographic-search');
  t.equal(ruleFor('/fhir/Patient', 'identifier=MRN%7C12345'), 'demographic-search');
  t.equal(ruleFor('/fhir/Patient', '_id=p-0001'), 'rest', 'a search by id is not demographic');
  t.equal(ruleFor('/fhir/Patient', ''), 'rest', 'no query');
  t.equal(ruleFor('/fhir/Observation', 'family=Smith'), 'rest', 'another resource');
  t.equal(ruleFor('/fhir/Observation', '_count=10'), 'count-without-family');
  t.equal(ruleFor('/fhir/Observation', '_count=10&family=x'), 'rest', 'negated in');
  t.equal(ruleFor('/fhir/Observation', 'a=1&b=2&c=3&d=4'), 'many-params');
  t.equal(ruleFor('/fhir/Observation', 'a=1&a=2&b=3&c=4'), 'rest', 'size counts distinct names');
});

t.test('query_params is list(string) for the checker', async (t) => {
  t.throws(() => compilePolicy('version: 1\nrules: [{id: r, action: allow, when: "request.query_params == \'family\'"}]\n', 'bad.yaml'), /WG_POLICY_CEL_TYPE/);
  t.throws(() => compilePolicy('version: 1\nrules: [{id: r, action: allow, when: "request.query_params.exists(p, p > 1)"}]\n', 'bad.yaml'), /WG_POLICY_CEL_TYPE/);
});

t.test('native path evaluates in', async (t) => {
  const predicate = compileNative(parse("'family' in request.query_params && request.path == '/fhir/Patient'").expr);
  const bindings = (queryParams: string[]) => buildBindings(makeContext({ request: { path: '/fhir/Patient', queryParams } }), { hour: 10, minute: 0, weekday: 1 });

  t.type(predicate, 'function', 'compiled to a closure');
  t.equal(predicate?.(bindings(['given', 'family'])), true);
  t.equal(predicate?.(bindings(['given'])), false);
  t.equal(predicate?.(bindings([])), false);
});

t.test('list operations fall back to the interpreter', async (t) => {
  const expressions = [
    'request.query_params.exists(p, p == "family")',
    'size(request.query_params) > 0',
    'request.query_params == ["family"]',
    'request.query_params == principal.groups',
    '"family" in request.query_params.map(p, p)',
  ];

  for (const expression of expressions) {
    t.equal(compileNative(parse(expression).expr), undefined, expression);
  }
});

t.test('native and interpreted in agree', async (t) => {
  const native = compilePolicy('version: 1\nrules: [{id: r, action: allow, when: "\'family\' in request.query_params"}]\n', 'native.yaml');
  const interpreted = compilePolicy('version: 1\nrules: [{id: r, action: allow, when: "request.query_params.exists(p, p == \'family\')"}]\n', 'interpreted.yaml');
  const lists = [[], ['family'], ['given', 'family'], ['given'], ['Family'], ['family:exact']];

  for (const queryParams of lists) {
    const context = makeContext({ request: { queryParams } });
    t.equal(native.decide(context).rule, interpreted.decide(context).rule, JSON.stringify(queryParams));
  }
  t.equal(native.decide(makeContext({ request: { queryParams: ['family'] } })).rule, 'r');
  t.equal(interpreted.decide(makeContext({ request: { queryParams: ['family'] } })).rule, 'r');
});

t.test('list equality compares elements', async (t) => {
  const policy = compilePolicy('version: 1\nrules: [{id: r, action: allow, when: "request.query_params == principal.groups"}]\n', 'equal.yaml');
  const context = makeContext({ principal: { groups: ['family', 'given'] }, request: { queryParams: ['family', 'given'] } });

  t.equal(policy.decide(context).rule, 'r', 'equal lists in different arrays');
  t.equal(policy.decide(makeContext({ principal: { groups: ['family'] }, request: { queryParams: ['given'] } })).rule, 'default');
});
