import type { LinearExplanation } from '../model/metadata.ts';

export interface LogisticOptions {
  readonly iterations: number;
  readonly learningRate: number;
  /** L2 penalty on the standardised weights. */
  readonly l2: number;
}

/**
 * Fits a logistic regression with full-batch gradient descent (Adam) on standardised
 * features. Classes are weighted to balance, because misuse is rare. Deterministic: the
 * result depends only on the rows, their order and the options.
 */
export function fitLogistic(rows: readonly Float32Array[], labels: readonly number[], options: LogisticOptions): LinearExplanation {
  const width = rows[0]!.length;
  const count = rows.length;
  const means = new Array<number>(width).fill(0);
  const scales = new Array<number>(width).fill(0);

  for (const row of rows) {
    for (let i = 0; i < width; i += 1) means[i]! += row[i]! / count;
  }
  for (const row of rows) {
    for (let i = 0; i < width; i += 1) scales[i]! += (row[i]! - means[i]!) ** 2 / count;
  }
  for (let i = 0; i < width; i += 1) {
    // A constant feature keeps scale 1, so it neither divides by zero nor gets weight.
    scales[i] = Math.sqrt(scales[i]!) > 1e-6 ? Math.sqrt(scales[i]!) : 1;
  }

  const standardised = rows.map((row) => Float64Array.from(row, (value, i) => (value - means[i]!) / scales[i]!));
  const positives = labels.filter((label) => label === 1).length;
  const positiveWeight = positives === 0 ? 1 : (count - positives) / positives;
  const normaliser = (count - positives) * 2;

  // Parameter vector: weights, then bias. Adam moments per parameter.
  const parameters = new Float64Array(width + 1);
  const firstMoment = new Float64Array(width + 1);
  const secondMoment = new Float64Array(width + 1);
  const gradient = new Float64Array(width + 1);

  for (let step = 1; step <= options.iterations; step += 1) {
    gradient.fill(0);
    for (let r = 0; r < count; r += 1) {
      const x = standardised[r]!;
      let z = parameters[width]!;
      for (let i = 0; i < width; i += 1) z += parameters[i]! * x[i]!;

      const error = (1 / (1 + Math.exp(-z)) - labels[r]!) * (labels[r] === 1 ? positiveWeight : 1);
      for (let i = 0; i < width; i += 1) gradient[i]! += error * x[i]!;
      gradient[width]! += error;
    }

    for (let i = 0; i <= width; i += 1) {
      const g = gradient[i]! / normaliser + (i < width ? options.l2 * parameters[i]! : 0);
      firstMoment[i] = 0.9 * firstMoment[i]! + 0.1 * g;
      secondMoment[i] = 0.999 * secondMoment[i]! + 0.001 * g * g;
      const corrected = firstMoment[i]! / (1 - 0.9 ** step);
      const correctedSquare = secondMoment[i]! / (1 - 0.999 ** step);
      parameters[i]! -= (options.learningRate * corrected) / (Math.sqrt(correctedSquare) + 1e-8);
    }
  }

  return {
    kind: 'logistic',
    means: means.map(roundFloat32),
    scales: scales.map(roundFloat32),
    weights: Array.from(parameters.subarray(0, width), roundFloat32),
    bias: roundFloat32(parameters[width]!),
  };
}

/** Rounds to float32, the precision of the ONNX graph, so metadata and graph agree. */
function roundFloat32(value: number): number {
  return Math.fround(value);
}
