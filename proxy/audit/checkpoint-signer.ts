import { Worker } from 'node:worker_threads';
import { AuditError } from './errors.ts';
import type { AuditSigningKeys } from './keys.ts';
import { checkpointMessage, type CheckpointHead, type CheckpointSignatures } from './signatures.ts';

/** Signs checkpoints with Ed25519 and ML-DSA-65 in a worker thread. */
export class CheckpointSigner {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (value: CheckpointSignatures) => void; reject: (error: Error) => void }>();
  #nextId = 1;

  constructor(keys: AuditSigningKeys) {
    this.#worker = new Worker(new URL('./signing-worker.ts', import.meta.url), {
      workerData: { ed25519Pkcs8: keys.ed25519Pkcs8, mlDsa65Seed: Uint8Array.from(keys.mlDsa65Seed) },
    });
    this.#worker.on('message', (reply: { id: number; signatures?: CheckpointSignatures; error?: string }) => {
      const waiter = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) this.#worker.unref();
      if (reply.signatures) waiter?.resolve(reply.signatures);
      else waiter?.reject(new AuditError('WG_AUDIT_SIGNING_FAILED', `The signing worker failed to sign a checkpoint: ${reply.error}.`));
    });
    this.#worker.on('error', (error) => this.#failAll(error));
    // NOTE: a worker that exits is not restarted, so every later checkpoint fails and is
    // logged until Wardgate restarts. The hash chain itself keeps being written.
    this.#worker.on('exit', (code) => this.#failAll(new Error(`the signing worker exited with code ${code}`)));
    // Unreferenced after the listeners are attached, so that an idle worker never keeps the process running.
    this.#worker.unref();
  }

  /** Signs a chain head; resolves with both signatures. */
  sign(head: CheckpointHead): Promise<CheckpointSignatures> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      // Referenced while a signature is pending, so that a closing process waits for its final checkpoint.
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, message: checkpointMessage(head) });
    });
  }

  /** Stops the worker; signatures still pending are rejected. */
  async close(): Promise<void> {
    await this.#worker.terminate();
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) {
      waiter.reject(new AuditError('WG_AUDIT_SIGNING_FAILED', `The signing worker failed: ${error.message}.`, { cause: error }));
    }
    this.#pending.clear();
  }
}
