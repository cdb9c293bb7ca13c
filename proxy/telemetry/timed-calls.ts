import { performance } from 'node:perf_hooks';

/**
 * Returns a view of `target` whose methods report the time in milliseconds until the
 * promise they return settles. Used to measure Redis-backed stores without changing them.
 * Methods run with `this` bound to `target`, so classes with private fields keep working;
 * methods that return no promise are passed through untimed.
 */
export function timeAsyncCalls<T extends object>(target: T, record: (ms: number, method: string) => void): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver);
      if (typeof value !== 'function' || property === 'constructor') return value;

      return function timed(...args: unknown[]) {
        const started = performance.now();
        const result: unknown = (value as (...parameters: unknown[]) => unknown).apply(object, args);
        if (result instanceof Promise) {
          const report = () => record(performance.now() - started, String(property));
          result.then(report, report);
        }
        return result;
      };
    },
  });
}
