import t from 'tap';

import { createRouter, type RouteConfig } from '../../proxy/routing/router.ts';

const failClosed = { redis: 'closed', scorer: 'closed', idp: 'closed' } as const;

function route(id: string, host: string, pathPrefix: string): RouteConfig {
  return { id, host, path_prefix: pathPrefix, upstream: 'http://127.0.0.1:9000', sensitivity: 'normal', fail_mode: failClosed };
}

t.test('router matches host then longest prefix', async (t) => {
  const router = createRouter([
    route('ehr-root', 'ehr.localhost', '/'),
    route('ehr-fhir', 'ehr.localhost', '/fhir'),
    route('ehr-everything', 'ehr.localhost', '/fhir/Patient/'),
    route('any-fhir', '*', '/fhir'),
    route('any-health', '*', '/healthz'),
  ]);

  const cases: Array<[string, string, string | undefined]> = [
    ['ehr.localhost', '/', 'ehr-root'],
    ['ehr.localhost', '/fhir', 'ehr-fhir'],
    ['ehr.localhost', '/fhir/Observation', 'ehr-fhir'],
    ['ehr.localhost', '/fhirx', 'ehr-root'],
    ['ehr.localhost', '/fhir/Patient', 'ehr-everything'],
    ['ehr.localhost', '/fhir/Patient/p-0001/$everything', 'ehr-everything'],
    ['ehr.localhost', '/fhir/PatientX', 'ehr-fhir'],
    ['ehr.localhost', '/healthz', 'ehr-root'],
    ['lab.localhost', '/fhir/Patient', 'any-fhir'],
    ['lab.localhost', '/healthz', 'any-health'],
    ['lab.localhost', '/healthz/ready', 'any-health'],
    ['lab.localhost', '/', undefined],
    ['lab.localhost', '/fhirx', undefined],
  ];

  for (const [host, path, expected] of cases) {
    t.equal(router.match(host, path)?.id, expected, `${host}${path}`);
  }
});

t.test('router fills defaults and freezes routes', async (t) => {
  const router = createRouter([{ ...route('r', '*', '/app/'), fail_mode: { redis: 'open' } as RouteConfig['fail_mode'] }]);

  t.equal(router.routes[0]!.path_prefix, '/app');
  t.same(router.routes[0]!.fail_mode, { redis: 'open', scorer: 'closed', idp: 'closed' });
  t.ok(Object.isFrozen(router.routes[0]));
  t.equal(router.match('x', '/app/page')?.id, 'r');
});

t.test('router rejects invalid routes', async (t) => {
  const valid = route('r', 'ehr.localhost', '/');
  const cases: Array<[string, unknown, string]> = [
    ['duplicate id', [valid, valid], 'routes[1].id'],
    ['uppercase host', [{ ...valid, host: 'EHR.localhost' }], 'routes[0].host'],
    ['host with port', [{ ...valid, host: 'ehr.localhost:8443' }], 'routes[0].host'],
    ['relative prefix', [{ ...valid, path_prefix: 'fhir' }], 'routes[0].path_prefix'],
    ['dot segment prefix', [{ ...valid, path_prefix: '/a/../b' }], 'routes[0].path_prefix'],
    ['encoded prefix', [{ ...valid, path_prefix: '/a%2Fb' }], 'routes[0].path_prefix'],
    ['ftp upstream', [{ ...valid, upstream: 'ftp://127.0.0.1' }], 'routes[0].upstream'],
    ['upstream with credentials', [{ ...valid, upstream: 'http://u:p@127.0.0.1' }], 'routes[0].upstream'],
    ['unparsable upstream', [{ ...valid, upstream: 'not a url' }], 'routes[0].upstream'],
    ['numeric upstream', [{ ...valid, upstream: 8080 }], 'routes[0].upstream'],
    ['unknown sensitivity', [{ ...valid, sensitivity: 'extreme' }], 'routes[0].sensitivity'],
    ['unknown fail mode', [{ ...valid, fail_mode: { redis: 'maybe' } }], 'routes[0].fail_mode.redis'],
    ['string public flag', [{ ...valid, public: 'yes' }], 'routes[0].public'],
    ['null route', [null], 'routes[0]'],
    ['not a list', 'routes', 'routes'],
  ];

  for (const [name, routes, option] of cases) {
    t.throws(() => createRouter(routes as RouteConfig[]), { code: 'WG_ROUTING_INVALID_ROUTE', option }, name);
  }

  t.throws(() => createRouter([{ ...valid, upstream: 'ftp://127.0.0.1' }]), {
    message: 'Option routes[0].upstream is invalid: expected an http: or https: URL without credentials, query or fragment, received "ftp://127.0.0.1". Use a URL such as "http://127.0.0.1:8080".',
  });
});
