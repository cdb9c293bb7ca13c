import { isScalar, type Node } from 'yaml';

import type { OptionReader } from './reader.ts';

/** Keys of `session:` read here, in addition to `idle_timeout` and `absolute_lifetime`. */
export const SESSION_EXTRA_KEYS = ['max_saved_body_bytes', 'saved_request_key_env', 'claims_refresh_interval', 'shared_sign_in'] as const;

/** Optional session settings for saved requests, claims refresh and shared sign-in. */
export interface SessionExtras {
  /** Largest POST body kept across a step-up, in bytes (default 65536). */
  readonly max_saved_body_bytes?: number;
  /** 32-byte AES-256-GCM key for kept requests, from the environment variable named by `saved_request_key_env`. */
  readonly saved_request_key?: Buffer;
  /** Seconds after which claims are read again from the IdP's userinfo endpoint. */
  readonly claims_refresh_interval?: number;
  readonly shared_sign_in?: { readonly sign_in_host: string; readonly hosts: readonly string[] };
}

const HOST_PATTERN = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])$/;

/** Reads the optional `session:` keys, recording an issue with line and column for each bad one. */
export function readSessionExtras(reader: OptionReader, session: Map<string, Node>, env: NodeJS.ProcessEnv): SessionExtras {
  const extras: { -readonly [K in keyof SessionExtras]: SessionExtras[K] } = {};

  if (session.has('max_saved_body_bytes')) {
    extras.max_saved_body_bytes = reader.integer(session.get('max_saved_body_bytes'), 'session.max_saved_body_bytes', 0, 1024 * 1024);
  }
  if (session.has('claims_refresh_interval')) {
    extras.claims_refresh_interval = reader.integer(session.get('claims_refresh_interval'), 'session.claims_refresh_interval', 10, 86_400);
  }

  const keyVariable = reader.string(session.get('saved_request_key_env'), 'session.saved_request_key_env', 'WARDGATE_SAVED_REQUEST_KEY');
  const keyText = env[keyVariable]?.trim();
  if (keyText) {
    const key = /^[0-9a-fA-F]{64}$/.test(keyText) ? Buffer.from(keyText, 'hex') : null;
    if (key === null) {
      reader.report(session.get('saved_request_key_env') ?? null, 'session.saved_request_key_env', `environment variable ${keyVariable} must hold exactly 32 bytes as 64 hexadecimal characters; generate one with: openssl rand -hex 32`);
    } else {
      extras.saved_request_key = key;
    }
  }

  const sharedNode = session.get('shared_sign_in');
  if (sharedNode !== undefined) {
    const shared = reader.map(sharedNode, 'session.shared_sign_in', ['sign_in_host', 'hosts']);
    if (shared !== null) {
      const signInHost = reader.string(shared.get('sign_in_host'), 'session.shared_sign_in.sign_in_host');
      const hosts = reader.list(shared.get('hosts'), 'session.shared_sign_in.hosts').map((node, i) => {
        const value = isScalar(node) && typeof node.value === 'string' ? node.value : '';
        if (!HOST_PATTERN.test(value)) reader.report(node, `session.shared_sign_in.hosts[${i}]`, `expected a lowercase host name without port, got ${JSON.stringify(String(isScalar(node) ? node.value : ''))}`);
        return value;
      });
      if (hosts.length < 2) reader.report(shared.get('hosts') ?? sharedNode, 'session.shared_sign_in.hosts', 'expected at least two host names that share one sign-in');
      if (signInHost !== '' && !hosts.includes(signInHost)) reader.report(shared.get('sign_in_host') ?? sharedNode, 'session.shared_sign_in.sign_in_host', `expected one of session.shared_sign_in.hosts (${hosts.join(', ')}), got ${JSON.stringify(signInHost)}`);
      extras.shared_sign_in = { sign_in_host: signInHost, hosts };
    }
  }

  return extras;
}

/**
 * Reports shared sign-in hosts that no route serves, because a hand-off may only be sent to a
 * host that Wardgate itself routes. A route with host `*` serves every host.
 */
export function checkSharedHostsRouted(reader: OptionReader, session: Map<string, Node>, extras: SessionExtras, routeHosts: readonly string[]): void {
  if (extras.shared_sign_in === undefined || routeHosts.includes('*')) return;

  for (const host of extras.shared_sign_in.hosts) {
    if (host !== '' && !routeHosts.includes(host)) {
      reader.report(session.get('shared_sign_in') ?? null, 'session.shared_sign_in.hosts', `host ${JSON.stringify(host)} has no route; add a route for it or remove it from the list`);
    }
  }
}
