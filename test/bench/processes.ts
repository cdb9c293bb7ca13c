// Child processes of the benchmark: the demo upstream and the load generator.
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Result of one timed load run, as printed by `load.ts`. */
export interface LoadResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly statuses: Record<string, number>;
}

/** A demo clinical app running in a child process. */
export interface UpstreamProcess {
  readonly url: string;
  close(): void;
}

/**
 * Starts `upstream.ts` in a child process and waits for the URL it prints. The child ends
 * when `close` disconnects it, or when this process exits.
 */
export function startUpstreamProcess(): Promise<UpstreamProcess> {
  const script = fileURLToPath(new URL('./upstream.ts', import.meta.url));
  const child: ChildProcess = fork(script, [], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let output = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the demo upstream process exited with code ${code} before it printed its URL`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const newline = output.indexOf('\n');
      if (newline < 0) return;
      child.removeAllListeners('exit');
      resolve({ url: output.slice(0, newline).trim(), close: () => child.disconnect() });
    });
  });
}

/** Runs `load.ts` in its own process with the given options and returns its result. */
export function runLoad(options: Record<string, unknown>): Promise<LoadResult> {
  const script = fileURLToPath(new URL('./load.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, JSON.stringify(options)], { timeout: 120_000 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(JSON.parse(stdout) as LoadResult);
    });
  });
}
