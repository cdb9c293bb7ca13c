import { ScorerError } from '../errors.ts';
import { onnx } from './onnx-proto.ts';

/** Largest model file the scorer decodes; the shipped tree model is a few hundred KiB. */
export const MAX_MODEL_BYTES = 64 * 1024 * 1024;

/** Per-feature terms of a logistic model, in logit units: `weights[i] * (x[i] - means[i]) / scales[i]`. */
export interface LinearExplanation {
  readonly kind: 'logistic';
  readonly means: readonly number[];
  readonly scales: readonly number[];
  readonly weights: readonly number[];
  readonly bias: number;
}

/**
 * One node of a regression tree. Internal nodes send a row left when
 * `row[feature] <= threshold` (ONNX `BRANCH_LEQ`); leaves have `feature` -1. `value` is the
 * leaf output, and for internal nodes the output the node would give as a leaf, which the
 * path-based explanation uses. `cover` is the sum of training hessians that reached the node.
 */
export interface TreeNode {
  readonly feature: number;
  readonly threshold: number;
  readonly left: number;
  readonly right: number;
  readonly value: number;
  readonly cover: number;
}

/** Boosted trees in logit units: risk = sigmoid(base + sum over trees of the reached leaf's value). */
export interface TreeExplanation {
  readonly kind: 'trees';
  readonly base: number;
  readonly trees: readonly (readonly TreeNode[])[];
}

export type ModelExplanation = LinearExplanation | TreeExplanation;

/** Wardgate metadata decoded from a model file's `metadata_props`. */
export interface ModelMetadata {
  readonly featureNames: readonly string[];
  readonly schemaVersion: string;
  /** `wardgate.model_version`, or undefined when the file has none. */
  readonly modelVersion: string | undefined;
  readonly trainingSummary: unknown;
  readonly explanation: ModelExplanation | undefined;
  readonly props: Readonly<Record<string, string>>;
}

export const METADATA_KEYS = Object.freeze({
  featureNames: 'wardgate.feature_names',
  schemaVersion: 'wardgate.feature_schema_version',
  trainingSummary: 'wardgate.training_summary',
  explanation: 'wardgate.explanation',
  modelVersion: 'wardgate.model_version',
});

/**
 * Decodes the Wardgate metadata of an ONNX model file with onnx-proto, because
 * onnxruntime-node does not expose `metadata_props`.
 *
 * @param source File name or label used in error messages.
 * @throws {ScorerError} `WG_SCORER_MODEL_INVALID` for an empty, oversized, undecodable file,
 *   a duplicated metadata key, or missing or malformed Wardgate metadata.
 */
export function decodeModelMetadata(bytes: Uint8Array, source: string): ModelMetadata {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) {
    throwInvalid(source, 'expected an ONNX ModelProto, received an empty file');
  }

  if (bytes.byteLength > MAX_MODEL_BYTES) {
    throwInvalid(source, `expected at most ${MAX_MODEL_BYTES} bytes, received ${bytes.byteLength}`);
  }

  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throwInvalid(source, `the file is not a decodable ONNX ModelProto (${(error as Error).message})`, error);
  }

  const props: Record<string, string> = {};
  for (const entry of model.metadataProps ?? []) {
    const key = entry.key ?? '';
    if (Object.hasOwn(props, key)) {
      throwInvalid(source, `metadata_props contains the key ${JSON.stringify(key)} twice`);
    }
    props[key] = entry.value ?? '';
  }

  const featureNames = parseJson(props, METADATA_KEYS.featureNames, source);
  if (!Array.isArray(featureNames) || featureNames.length === 0 || !featureNames.every((name) => typeof name === 'string')) {
    throwInvalid(source, `metadata ${METADATA_KEYS.featureNames} must be a non-empty JSON array of strings`);
  }

  const schemaVersion = props[METADATA_KEYS.schemaVersion];
  if (schemaVersion === undefined || schemaVersion === '') {
    throwInvalid(source, `metadata ${METADATA_KEYS.schemaVersion} is missing`);
  }

  const explanation = Object.hasOwn(props, METADATA_KEYS.explanation)
    ? assertExplanation(parseJson(props, METADATA_KEYS.explanation, source), featureNames.length, source)
    : undefined;

  return Object.freeze({
    featureNames: Object.freeze([...featureNames]),
    schemaVersion,
    modelVersion: props[METADATA_KEYS.modelVersion],
    trainingSummary: Object.hasOwn(props, METADATA_KEYS.trainingSummary)
      ? parseJson(props, METADATA_KEYS.trainingSummary, source)
      : undefined,
    explanation,
    props: Object.freeze(props),
  });
}

/**
 * Checks that a model's feature list equals the schema's, name by name.
 *
 * @throws {ScorerError} `WG_SCORER_MODEL_SCHEMA_MISMATCH` naming the first differing position.
 */
export function assertFeatureNames(
  found: readonly string[],
  schema: { readonly version: string; readonly names: readonly string[] },
  source: string,
): void {
  const length = Math.max(found.length, schema.names.length);

  for (let position = 0; position < length; position += 1) {
    const expected = schema.names[position];
    const actual = found[position];
    if (expected === actual) {
      continue;
    }

    throw new ScorerError(
      'WG_SCORER_MODEL_SCHEMA_MISMATCH',
      `Model ${source} does not match feature schema ${schema.version}: at position ${position} ` +
        `expected ${expected === undefined ? 'no feature' : JSON.stringify(expected)}, ` +
        `found ${actual === undefined ? 'no feature' : JSON.stringify(actual)}. Retrain the model with npm run train.`,
      { detail: { position, expected: expected ?? null, found: actual ?? null } },
    );
  }
}

function parseJson(props: Record<string, string>, key: string, source: string): unknown {
  const text = props[key];
  if (text === undefined) {
    throwInvalid(source, `metadata ${key} is missing`);
  }

  try {
    return JSON.parse(text);
  } catch (error) {
    throwInvalid(source, `metadata ${key} is not valid JSON`, error);
  }
}

function assertExplanation(value: unknown, featureCount: number, source: string): ModelExplanation {
  if ((value as { kind?: unknown } | null)?.kind === 'trees') {
    return assertTreeExplanation(value as Partial<TreeExplanation>, featureCount, source);
  }

  const candidate = value as Partial<LinearExplanation> | null;
  const isVector = (vector: unknown): vector is number[] =>
    Array.isArray(vector) && vector.length === featureCount && vector.every((x) => Number.isFinite(x));
  const valid =
    candidate !== null &&
    typeof candidate === 'object' &&
    candidate.kind === 'logistic' &&
    isVector(candidate.means) &&
    isVector(candidate.scales) &&
    candidate.scales.every((x) => x > 0) &&
    isVector(candidate.weights) &&
    Number.isFinite(candidate.bias);
  if (!valid) {
    throwInvalid(
      source,
      `metadata ${METADATA_KEYS.explanation} must be {kind: "logistic", means, scales, weights, bias} ` +
        `with ${featureCount} finite numbers per vector and positive scales, or {kind: "trees", base, trees}`,
    );
  }

  return Object.freeze(candidate as LinearExplanation);
}

function assertTreeExplanation(candidate: Partial<TreeExplanation>, featureCount: number, source: string): TreeExplanation {
  const validTree = (nodes: unknown): boolean =>
    Array.isArray(nodes) &&
    nodes.length > 0 &&
    nodes.every((node: Partial<TreeNode>, index) => {
      const leaf = node.feature === -1;
      return (
        Number.isInteger(node.feature) &&
        node.feature! >= -1 &&
        node.feature! < featureCount &&
        Number.isFinite(node.threshold) &&
        Number.isFinite(node.value) &&
        Number.isFinite(node.cover) &&
        (leaf ||
          (Number.isInteger(node.left) && Number.isInteger(node.right) && node.left! > index && node.right! > index && node.left! < nodes.length && node.right! < nodes.length))
      );
    });
  if (!Number.isFinite(candidate.base) || !Array.isArray(candidate.trees) || !candidate.trees.every(validTree)) {
    throwInvalid(
      source,
      `metadata ${METADATA_KEYS.explanation} of kind "trees" must have a finite base and trees of nodes ` +
        `{feature (-1 to ${featureCount - 1}), threshold, left, right, value, cover} whose children follow their parent`,
    );
  }

  return Object.freeze(candidate as TreeExplanation);
}

function throwInvalid(source: string, reason: string, cause?: unknown): never {
  throw new ScorerError('WG_SCORER_MODEL_INVALID', `Invalid model ${source}: ${reason}. Ship a model built by npm run train.`, {
    cause,
    detail: { source },
  });
}
