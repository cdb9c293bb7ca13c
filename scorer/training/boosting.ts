import type { TreeExplanation, TreeNode } from '../model/metadata.ts';

export interface BoostingOptions {
  readonly trees: number;
  readonly depth: number;
  readonly learningRate: number;
  /** L2 penalty on leaf values (XGBoost's lambda). */
  readonly l2: number;
  /** Minimum sum of hessians in a child; smaller splits are not made. */
  readonly minChildWeight: number;
  /** Maximum candidate thresholds per feature. */
  readonly bins: number;
  /**
   * Per feature, 1 when the model's output may only rise with the feature's value (a monotone
   * constraint, as XGBoost's `monotone_constraints`), 0 when unconstrained. Absent: none.
   */
  readonly monotone?: readonly number[];
}

/**
 * Fits gradient-boosted regression trees on the logistic loss (second-order, as in XGBoost)
 * with histogram splits. The model's output is sigmoid(base + sum of tree leaves). Each
 * internal node records the Newton value of its rows, so explanations can follow the path
 * of a row (Saabas contributions). Deterministic: the result depends only on the rows,
 * labels, weights and options.
 */
export function fitBoostedTrees(
  rows: readonly Float32Array[],
  labels: readonly number[],
  weights: readonly number[],
  options: BoostingOptions,
): TreeExplanation {
  const count = rows.length;
  const width = rows[0]!.length;
  const thresholds = candidateThresholds(rows, width, options.bins);
  const binned = binRows(rows, thresholds, width);

  let positive = 0;
  let total = 0;
  for (let r = 0; r < count; r += 1) {
    positive += weights[r]! * labels[r]!;
    total += weights[r]!;
  }
  const prior = Math.min(1 - 1e-6, Math.max(1e-6, positive / total));
  const base = Math.fround(Math.log(prior / (1 - prior)));
  const margin = new Float64Array(count).fill(base);
  const gradient = new Float64Array(count);
  const hessian = new Float64Array(count);
  const trees: TreeNode[][] = [];

  for (let tree = 0; tree < options.trees; tree += 1) {
    for (let r = 0; r < count; r += 1) {
      const p = 1 / (1 + Math.exp(-margin[r]!));
      gradient[r] = weights[r]! * (p - labels[r]!);
      hessian[r] = Math.max(weights[r]! * p * (1 - p), 1e-12);
    }

    const nodes = growTree(binned, thresholds, gradient, hessian, count, width, options);
    trees.push(nodes);
    for (let r = 0; r < count; r += 1) {
      margin[r]! += leafValue(nodes, rows[r]!);
    }
  }

  return { kind: 'trees', base, trees };
}

/** Returns the leaf value a row reaches, comparing as the ONNX BRANCH_LEQ mode does. */
export function leafValue(nodes: readonly TreeNode[], row: Float32Array): number {
  let node = nodes[0]!;
  while (node.feature >= 0) {
    node = nodes[row[node.feature]! <= node.threshold ? node.left : node.right]!;
  }

  return node.value;
}

/** Thresholds per feature: distinct values, or quantiles of them when there are more than `bins`. */
function candidateThresholds(rows: readonly Float32Array[], width: number, bins: number): Float32Array[] {
  const result: Float32Array[] = [];
  for (let f = 0; f < width; f += 1) {
    const values = Float32Array.from(rows, (row) => row[f]!).sort();
    const distinct: number[] = [];
    for (let i = 0; i < values.length; i += 1) {
      if (i === 0 || values[i] !== values[i - 1]) distinct.push(values[i]!);
    }
    distinct.pop();
    if (distinct.length <= bins) {
      result.push(Float32Array.from(distinct));
      continue;
    }
    const picked = new Set<number>();
    for (let b = 1; b <= bins; b += 1) {
      picked.add(values[Math.min(values.length - 1, Math.floor((b * values.length) / (bins + 1)))]!);
    }
    const maximum = values[values.length - 1]!;
    result.push(Float32Array.from([...picked].filter((value) => value < maximum).sort((a, b) => a - b)));
  }

  return result;
}

/** Bin index per cell: the first threshold the value is at or below (thresholds.length when above all). */
function binRows(rows: readonly Float32Array[], thresholds: readonly Float32Array[], width: number): Uint16Array {
  const binned = new Uint16Array(rows.length * width);
  rows.forEach((row, r) => {
    for (let f = 0; f < width; f += 1) {
      const edges = thresholds[f]!;
      let low = 0;
      let high = edges.length;
      while (low < high) {
        const mid = (low + high) >> 1;
        if (row[f]! <= edges[mid]!) high = mid;
        else low = mid + 1;
      }
      binned[r * width + f] = low;
    }
  });

  return binned;
}

function growTree(
  binned: Uint16Array,
  thresholds: readonly Float32Array[],
  gradient: Float64Array,
  hessian: Float64Array,
  count: number,
  width: number,
  options: BoostingOptions,
): TreeNode[] {
  const nodes: GrowingNode[] = [];
  const rowNode = new Int32Array(count);
  let G = 0;
  let H = 0;
  for (let r = 0; r < count; r += 1) {
    G += gradient[r]!;
    H += hessian[r]!;
  }
  nodes.push(leaf(G, H, options, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY));
  let frontier = [0];

  for (let level = 0; level < options.depth && frontier.length > 0; level += 1) {
    const slot = new Map(frontier.map((node, index) => [node, index]));
    const maxBins = Math.max(...thresholds.map((edges) => edges.length)) + 1;
    const histG = new Float64Array(frontier.length * width * maxBins);
    const histH = new Float64Array(frontier.length * width * maxBins);
    for (let r = 0; r < count; r += 1) {
      const s = slot.get(rowNode[r]!);
      if (s === undefined) continue;
      const g = gradient[r]!;
      const h = hessian[r]!;
      const offset = s * width * maxBins;
      for (let f = 0; f < width; f += 1) {
        const cell = offset + f * maxBins + binned[r * width + f]!;
        histG[cell]! += g;
        histH[cell]! += h;
      }
    }

    const next: number[] = [];
    const splits = new Map<number, { feature: number; bin: number; left: number; right: number }>();
    frontier.forEach((nodeIndex, s) => {
      const node = nodes[nodeIndex]!;
      const parentScore = scoreOf(node.gradient, node.hessian, weightOf(node.gradient, node.hessian, node, options), options);
      let best = { gain: 1e-9, feature: -1, bin: -1, gl: 0, hl: 0, wl: 0, wr: 0 };
      for (let f = 0; f < width; f += 1) {
        const offset = s * width * maxBins + f * maxBins;
        const increasing = options.monotone?.[f] === 1;
        let gl = 0;
        let hl = 0;
        for (let b = 0; b < thresholds[f]!.length; b += 1) {
          gl += histG[offset + b]!;
          hl += histH[offset + b]!;
          const gr = node.gradient - gl;
          const hr = node.hessian - hl;
          if (hl < options.minChildWeight || hr < options.minChildWeight) continue;
          const wl = weightOf(gl, hl, node, options);
          const wr = weightOf(gr, hr, node, options);
          // Under a monotone constraint, the rows above the threshold may not score lower.
          if (increasing && wl > wr) continue;
          const gain = scoreOf(gl, hl, wl, options) + scoreOf(gr, hr, wr, options) - parentScore;
          if (gain > best.gain) best = { gain, feature: f, bin: b, gl, hl, wl, wr };
        }
      }
      if (best.feature < 0) return;

      // Children of a constrained split are bounded at the midpoint of their weights, so no
      // deeper split can reverse the order (XGBoost's method).
      const mid = (best.wl + best.wr) / 2;
      const constrained = options.monotone?.[best.feature] === 1;
      const left = nodes.length;
      nodes.push(leaf(best.gl, best.hl, options, node.lower, constrained ? mid : node.upper));
      nodes.push(leaf(node.gradient - best.gl, node.hessian - best.hl, options, constrained ? mid : node.lower, node.upper));
      nodes[nodeIndex] = { ...node, feature: best.feature, threshold: thresholds[best.feature]![best.bin]!, left, right: left + 1 };
      splits.set(nodeIndex, { feature: best.feature, bin: best.bin, left, right: left + 1 });
      next.push(left, left + 1);
    });

    for (let r = 0; r < count; r += 1) {
      const split = splits.get(rowNode[r]!);
      if (split !== undefined) {
        rowNode[r] = binned[r * width + split.feature]! <= split.bin ? split.left : split.right;
      }
    }
    frontier = next;
  }

  return nodes.map((node) => ({
    feature: node.feature,
    threshold: node.threshold,
    left: node.left,
    right: node.right,
    value: node.value,
    cover: Math.fround(node.hessian),
  }));
}

/** A node while its tree grows: the sums of gradients and hessians of its rows, and the bounds of its weight. */
interface GrowingNode extends TreeNode {
  readonly gradient: number;
  readonly hessian: number;
  readonly lower: number;
  readonly upper: number;
}

function leaf(gradient: number, hessian: number, options: BoostingOptions, lower: number, upper: number): GrowingNode {
  const bounds = { lower, upper };

  return {
    feature: -1,
    threshold: 0,
    left: -1,
    right: -1,
    value: Math.fround(weightOf(gradient, hessian, bounds, options) * options.learningRate),
    cover: 0,
    gradient,
    hessian,
    lower,
    upper,
  };
}

/** Computes the Newton weight of a set of rows, clipped to a node's bounds. */
function weightOf(gradient: number, hessian: number, bounds: { readonly lower: number; readonly upper: number }, options: BoostingOptions): number {
  return Math.min(bounds.upper, Math.max(bounds.lower, -gradient / (hessian + options.l2)));
}

/** Computes the loss reduction of giving a set of rows the weight `w` (G^2 / (H + lambda) when `w` is unclipped). */
function scoreOf(gradient: number, hessian: number, w: number, options: BoostingOptions): number {
  return -(2 * gradient * w + (hessian + options.l2) * w * w);
}
