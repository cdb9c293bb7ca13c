import { METADATA_KEYS, type LinearExplanation } from './metadata.ts';
import { onnx } from './onnx-proto.ts';

const FLOAT = 1;
const OPSET = 13;
const IR_VERSION = 8;

export interface LogisticModelSpec {
  readonly featureNames: readonly string[];
  readonly schemaVersion: string;
  readonly modelVersion: string;
  /** Standardisation and weights; the graph folds the standardisation into MatMul and Add. */
  readonly explanation: LinearExplanation;
  readonly trainingSummary: unknown;
}

/**
 * Encodes a logistic regression as an ONNX model: input `features` float32 [N, F],
 * output `risk` float32 [N, 1] = Sigmoid(features x W + b), opset 13, IR version 8.
 * Standardisation is folded in: `W[i] = weights[i] / scales[i]`,
 * `b = bias - sum(weights[i] * means[i] / scales[i])`.
 */
export function encodeLogisticModel(spec: LogisticModelSpec): Uint8Array {
  const { means, scales, weights, bias } = spec.explanation;
  const featureCount = spec.featureNames.length;
  const folded = new Float32Array(featureCount);
  let offset = bias;

  for (let i = 0; i < featureCount; i += 1) {
    folded[i] = weights[i]! / scales[i]!;
    offset -= (weights[i]! * means[i]!) / scales[i]!;
  }

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'wardgate',
    producerVersion: spec.modelVersion,
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: 'wardgate_risk',
      node: [
        { opType: 'MatMul', input: ['features', 'weights'], output: ['logit_raw'], name: 'matmul' },
        { opType: 'Add', input: ['logit_raw', 'bias'], output: ['logit'], name: 'add' },
        { opType: 'Sigmoid', input: ['logit'], output: ['risk'], name: 'sigmoid' },
      ],
      initializer: [
        floatTensor('weights', [featureCount, 1], folded),
        floatTensor('bias', [1], Float32Array.of(offset)),
      ],
      input: [floatValueInfo('features', ['N', featureCount])],
      output: [floatValueInfo('risk', ['N', 1])],
    },
    metadataProps: [
      { key: METADATA_KEYS.featureNames, value: JSON.stringify(spec.featureNames) },
      { key: METADATA_KEYS.schemaVersion, value: spec.schemaVersion },
      { key: METADATA_KEYS.modelVersion, value: spec.modelVersion },
      { key: METADATA_KEYS.trainingSummary, value: JSON.stringify(spec.trainingSummary) },
      { key: METADATA_KEYS.explanation, value: JSON.stringify(spec.explanation) },
    ],
  });

  return onnx.ModelProto.encode(model).finish();
}

function floatTensor(name: string, dims: number[], values: Float32Array) {
  // raw_data is little-endian (ONNX TensorProto); copy to be independent of the host order.
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((value, index) => raw.writeFloatLE(value, index * 4));

  return { name, dims, dataType: FLOAT, rawData: raw };
}

function floatValueInfo(name: string, shape: (string | number)[]) {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: shape.map((dim) => (typeof dim === 'string' ? { dimParam: dim } : { dimValue: dim })) },
      },
    },
  };
}
