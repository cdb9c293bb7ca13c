// Worker thread that signs checkpoints, so the ML-DSA-65 signature (pure JavaScript, several
// milliseconds each) never runs on the event loop that serves requests. Loaded by
// checkpoint-signer.ts; runs under Node's type stripping like the rest of the code.
import { createPrivateKey, sign } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';

interface SigningRequest {
  readonly id: number;
  readonly message: Uint8Array;
}

const data = workerData as { ed25519Pkcs8: Uint8Array; mlDsa65Seed: Uint8Array };
const ed25519Key = createPrivateKey({ key: Buffer.from(data.ed25519Pkcs8), format: 'der', type: 'pkcs8' });
const mlDsa65SecretKey = ml_dsa65.keygen(data.mlDsa65Seed).secretKey;
data.mlDsa65Seed.fill(0);

parentPort!.on('message', (request: SigningRequest) => {
  try {
    const ed25519 = sign(null, request.message, ed25519Key).toString('base64url');
    const mlDsa65 = Buffer.from(ml_dsa65.sign(request.message, mlDsa65SecretKey)).toString('base64url');
    parentPort!.postMessage({ id: request.id, signatures: { ed25519, ml_dsa_65: mlDsa65 } });
  } catch (error) {
    parentPort!.postMessage({ id: request.id, error: (error as Error).message });
  }
});
