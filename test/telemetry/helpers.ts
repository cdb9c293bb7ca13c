import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import type { Test } from 'tap';
import { waitUntil } from '../wait.ts';

/** A metric reader that tests collect from on demand. */
export class TestMetricReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}

  /** Returns the data points of metric `name`, or an empty list when it has none yet. */
  async points(name: string): Promise<DataPoint<number | Histogram>[]> {
    const { resourceMetrics } = await this.collect();
    const points: DataPoint<number | Histogram>[] = [];
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name === name) points.push(...(metric.dataPoints as DataPoint<number | Histogram>[]));
      }
    }
    return points;
  }

  /** Returns the sum of a counter over the points whose attributes include `match`. */
  async counterSum(name: string, match: Record<string, string> = {}): Promise<number> {
    const points = await this.points(name);
    return points
      .filter((point) => Object.entries(match).every(([key, value]) => point.attributes[key] === value))
      .reduce((sum, point) => sum + (point.value as number), 0);
  }

  /** Returns the number of recordings of a histogram over the points whose attributes include `match`. */
  async histogramCount(name: string, match: Record<string, string> = {}): Promise<number> {
    const points = await this.points(name);
    return points
      .filter((point) => Object.entries(match).every(([key, value]) => point.attributes[key] === value))
      .reduce((sum, point) => sum + (point.value as Histogram).count, 0);
  }
}

export interface FakeCollector {
  readonly url: string;
  readonly requests: { path: string; contentType: string; headers: IncomingMessage['headers']; body: Buffer }[];
}

/** Starts an OTLP/HTTP receiver on a free port that responds to every request with `status`. */
export async function startCollector(t: Test, status = 200): Promise<FakeCollector> {
  const requests: FakeCollector['requests'] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{}' : '{"code":14,"message":"unavailable"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** Polls `condition` every 20 ms for up to `timeoutMs` of wall time; returns whether it became true. */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  return waitUntil(condition, timeoutMs);
}
