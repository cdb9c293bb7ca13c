import { METADATA_KEYS, type TreeExplanation } from './metadata.ts';
import { onnx } from './onnx-proto.ts';

const FLOAT = 1;
const OPSET = 13;
const ML_OPSET = 3;
const IR_VERSION = 8;
const ATTRIBUTE = Object.freeze({ FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 });

export interface TreeModelSpec {
  readonly featureNames: readonly string[];
  readonly schemaVersion: string;
  readonly modelVersion: string;
  readonly explanation: TreeExplanation;
  readonly trainingSummary: unknown;
}

/**
 * Encodes boosted trees as an ONNX model: input `features` float32 [N, F], an `ai.onnx.ml`
 * TreeEnsembleRegressor (opset 3) summing the leaves plus the base, then Sigmoid to output
 * `risk` float32 [N, 1]. The same trees go into `wardgate.explanation` for the path-based
 * contributions, so graph and explanation cannot drift apart.
 */
export function encodeTreeModel(spec: TreeModelSpec): Uint8Array {
  const { trees, base } = spec.explanation;
  const node = {
    treeIds: [] as number[],
    nodeIds: [] as number[],
    featureIds: [] as number[],
    modes: [] as Uint8Array[],
    values: [] as number[],
    trueIds: [] as number[],
    falseIds: [] as number[],
    missingTracksTrue: [] as number[],
  };
  const target = { treeIds: [] as number[], nodeIds: [] as number[], ids: [] as number[], weights: [] as number[] };

  trees.forEach((nodes, treeId) => {
    nodes.forEach((entry, nodeId) => {
      const isLeaf = entry.feature < 0;
      node.treeIds.push(treeId);
      node.nodeIds.push(nodeId);
      node.featureIds.push(isLeaf ? 0 : entry.feature);
      node.modes.push(Buffer.from(isLeaf ? 'LEAF' : 'BRANCH_LEQ'));
      node.values.push(isLeaf ? 0 : entry.threshold);
      node.trueIds.push(isLeaf ? 0 : entry.left);
      node.falseIds.push(isLeaf ? 0 : entry.right);
      node.missingTracksTrue.push(0);
      if (isLeaf) {
        target.treeIds.push(treeId);
        target.nodeIds.push(nodeId);
        target.ids.push(0);
        target.weights.push(entry.value);
      }
    });
  });

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'wardgate',
    producerVersion: spec.modelVersion,
    opsetImport: [
      { domain: '', version: OPSET },
      { domain: 'ai.onnx.ml', version: ML_OPSET },
    ],
    graph: {
      name: 'wardgate_risk',
      node: [
        {
          opType: 'TreeEnsembleRegressor',
          domain: 'ai.onnx.ml',
          name: 'trees',
          input: ['features'],
          output: ['logit'],
          attribute: [
            ints('nodes_treeids', node.treeIds),
            ints('nodes_nodeids', node.nodeIds),
            ints('nodes_featureids', node.featureIds),
            { name: 'nodes_modes', type: ATTRIBUTE.STRINGS, strings: node.modes },
            floats('nodes_values', node.values),
            ints('nodes_truenodeids', node.trueIds),
            ints('nodes_falsenodeids', node.falseIds),
            ints('nodes_missing_value_tracks_true', node.missingTracksTrue),
            ints('target_treeids', target.treeIds),
            ints('target_nodeids', target.nodeIds),
            ints('target_ids', target.ids),
            floats('target_weights', target.weights),
            { name: 'n_targets', type: ATTRIBUTE.INT, i: 1 },
            floats('base_values', [base]),
            { name: 'aggregate_function', type: ATTRIBUTE.STRING, s: Buffer.from('SUM') },
            { name: 'post_transform', type: ATTRIBUTE.STRING, s: Buffer.from('NONE') },
          ],
        },
        { opType: 'Sigmoid', input: ['logit'], output: ['risk'], name: 'sigmoid' },
      ],
      input: [floatValueInfo('features', ['N', spec.featureNames.length])],
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

function ints(name: string, values: number[]) {
  return { name, type: ATTRIBUTE.INTS, ints: values };
}

function floats(name: string, values: number[]) {
  return { name, type: ATTRIBUTE.FLOATS, floats: values };
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
