import type { CompiledRule, MatchField, RequestFacts } from './compiled-rule.ts';

/** Explains in one phrase why a request failed a rule's `match:` key, for `wardgate policy explain`. */
export function describeMismatch(rule: CompiledRule, field: MatchField, facts: RequestFacts): string {
  const context = facts.context;
  const principal = context.principal;
  const list = (values: ReadonlySet<string> | undefined) => [...(values ?? [])].join(', ');

  switch (field) {
    case 'authenticated':
      return `match.authenticated is ${String(rule.authenticated)}, the request is ${principal === null ? 'anonymous' : 'authenticated'}`;
    case 'routes':
      return `route ${context.route.id} is not in match.routes [${list(rule.routes)}]`;
    case 'methods':
      return `method ${context.request.method} is not in match.methods [${list(rule.methods)}]`;
    case 'sensitivity':
      return `route sensitivity ${context.route.sensitivity} is not in match.sensitivity [${list(rule.sensitivity)}]`;
    case 'hosts':
      return `host ${facts.host} is not in match.hosts [${list(rule.hosts)}]`;
    case 'auth_methods':
      return `authentication method ${principal?.method ?? 'none (anonymous)'} is not in match.auth_methods [${list(rule.authMethods)}]`;
    case 'tls_groups':
      return `TLS group ${context.tls.group} is not in match.tls_groups [${list(rule.tlsGroups)}]`;
    case 'groups':
      return `groups [${(principal?.groups ?? []).join(', ')}] share none with match.groups [${list(rule.groups)}]`;
    case 'paths':
      return `path ${context.request.path} matches no pattern of match.paths`;
    case 'devices':
      return `device ${principal?.device ?? 'none'} matches no pattern of match.devices`;
    case 'networks':
      return `client address ${context.request.ip} is in no block of match.networks`;
    case 'time': {
      const local = facts.local;
      if (local === undefined) return `request time ${context.time} is not a finite number of milliseconds, so match.time cannot hold`;
      const weekday = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][local.weekday];
      return `local time ${weekday} ${String(local.hour).padStart(2, '0')}:${String(local.minute).padStart(2, '0')} is outside match.time`;
    }
  }
}
