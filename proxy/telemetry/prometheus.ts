import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

/** A running Prometheus scrape endpoint. */
export interface PrometheusEndpoint {
  /** The reader to give the meter provider. */
  readonly reader: PrometheusExporter;
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/**
 * Serves the metrics in the Prometheus text format at `GET /metrics` on its own plain-HTTP
 * listener, separate from the public TLS listener, so that scraping never passes through
 * authentication and the metrics never reach clients. Any other path gets 404.
 *
 * @throws the listen error, e.g. `EADDRINUSE`, with the port in the message.
 */
export async function startPrometheusEndpoint(host: string, port: number): Promise<PrometheusEndpoint> {
  const reader = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: the metrics are at GET /metrics.\n');
      return;
    }
    reader.getMetricsRequestHandler(req, res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use; change telemetry.prometheus.port` : error.message;
      reject(Object.assign(new Error(`Failed to start the Prometheus endpoint: ${reason}.`), { code: error.code }));
    });
    server.listen(port, host, resolve);
  });

  return {
    reader,
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
