import type { Contribution } from '../types.ts';
import type { ModelExplanation } from './metadata.ts';

/** Number of contributions a score result carries. */
export const TOP_CONTRIBUTIONS = 3;

/**
 * Computes each feature's contribution to one row's logit and returns the largest three,
 * highest first, in logit units.
 * - Logistic: `weight * (x - mean) / scale`, the exact share of the standardized linear term.
 * - Trees: path-based (Saabas) contributions. Walking a row down each tree, every split adds
 *   the change from the node's value to the chosen child's value to the split feature, so the
 *   contributions plus the roots' values sum to the model's logit.
 */
export function topContributions(explanation: ModelExplanation, featureNames: readonly string[], row: Float32Array): Contribution[] {
  const totals = new Float64Array(featureNames.length);

  if (explanation.kind === 'logistic') {
    for (let i = 0; i < featureNames.length; i += 1) {
      totals[i] = (explanation.weights[i]! * (row[i]! - explanation.means[i]!)) / explanation.scales[i]!;
    }
  } else {
    for (const nodes of explanation.trees) {
      let node = nodes[0]!;
      while (node.feature >= 0) {
        const child = nodes[row[node.feature]! <= node.threshold ? node.left : node.right]!;
        totals[node.feature]! += child.value - node.value;
        node = child;
      }
    }
  }

  const contributions = featureNames.map((name, i) => ({ name, value: row[i]!, contribution: totals[i]! }));
  contributions.sort((a, b) => b.contribution - a.contribution || a.name.localeCompare(b.name));

  return contributions.slice(0, TOP_CONTRIBUTIONS).map((entry) => Object.freeze(entry));
}
