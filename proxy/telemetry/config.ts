import type { Node } from 'yaml';
import type { OptionReader } from '../config/reader.ts';
import { parseCidr } from './trusted-hops.ts';

/** The `telemetry` section of the configuration file. */
export interface TelemetryConfig {
  /** CIDRs of hops whose `traceparent` header is honoured; empty by default. */
  readonly trusted_hops: readonly string[];
  /** Where the Prometheus endpoint listens, or null (the default) for no endpoint. */
  readonly prometheus: { readonly host: string; readonly port: number } | null;
}

export const DEFAULT_TELEMETRY_CONFIG: TelemetryConfig = Object.freeze({ trusted_hops: Object.freeze([]), prometheus: null });

/**
 * Reads the optional `telemetry` section. Exporter settings are not here: they come from
 * the standard `OTEL_*` environment variables, as collectors and operators expect.
 */
export function readTelemetryConfig(reader: OptionReader, node: Node | undefined, listen: { host: string; port: number }): TelemetryConfig {
  if (node === undefined) return DEFAULT_TELEMETRY_CONFIG;
  const section = reader.map(node, 'telemetry', ['trusted_hops', 'prometheus']);
  if (!section) return DEFAULT_TELEMETRY_CONFIG;

  const trustedHops: string[] = [];
  const hopsNode = section.get('trusted_hops');
  if (hopsNode !== undefined) {
    reader.list(hopsNode, 'telemetry.trusted_hops').forEach((item, index) => {
      const option = `telemetry.trusted_hops[${index}]`;
      const cidr = reader.string(item, option);
      if (cidr === '') return;
      const parsed = parseCidr(cidr);
      if (parsed.ok) trustedHops.push(cidr);
      else reader.report(item, option, `invalid CIDR: ${parsed.reason}; write a network such as 10.0.0.0/8 or fd00::/8`);
    });
  }

  let prometheus: TelemetryConfig['prometheus'] = null;
  const prometheusNode = section.get('prometheus');
  if (prometheusNode !== undefined) {
    const fields = reader.map(prometheusNode, 'telemetry.prometheus', ['host', 'port']);
    if (fields) {
      const host = reader.string(fields.get('host'), 'telemetry.prometheus.host', '127.0.0.1');
      const port = reader.integer(fields.get('port'), 'telemetry.prometheus.port', 0, 65535, 9464);
      if (port !== 0 && port === listen.port) {
        reader.report(fields.get('port') ?? prometheusNode, 'telemetry.prometheus.port', `port ${port} is the public listener's port (listen.port); the metrics endpoint needs its own port, e.g. 9464`);
      }
      prometheus = { host, port };
    }
  }

  return Object.freeze({ trusted_hops: Object.freeze(trustedHops), prometheus: prometheus && Object.freeze(prometheus) });
}
