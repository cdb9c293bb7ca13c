/**
 * Path and device glob matching that takes time linear in the input for any pattern.
 *
 * A backtracking regular expression built from a glob can take exponential or high
 * polynomial time: `/fhir/**\/**\/**\/**\/$everything` as `(?:[^/]*\/)*` four times in a row
 * blocked the event loop for seconds on a 300-segment path. These matchers compile the glob
 * into a small nondeterministic automaton and run it over the input with a set of current
 * states (Thompson's construction), so matching costs at most O(input length × pattern
 * length) steps and never backtracks.
 */

/** Matches a whole string against a compiled glob. */
export interface GlobMatcher {
  matches(input: string): boolean;
}

const Step = {
  /** One exact character. */
  Literal: 0,
  /** `*`: any run of characters other than `/`. */
  SegmentChars: 1,
  /** `**` inside or at the end of a segment: any run of characters. */
  AnyChars: 2,
  /** `**\/` as a whole segment: any number of whole segments, each ending in `/`, including none. */
  WholeSegments: 3,
} as const;

type Step = (typeof Step)[keyof typeof Step];

interface GlobStep {
  readonly kind: Step;
  /** The character code for {@link Step.Literal}, otherwise -1. */
  readonly code: number;
}

const SLASH = 0x2f;

/**
 * Compiles a path glob. `*` matches within one path segment, and `**` as a whole segment
 * followed by `/` matches any number of whole segments (including none). Any other `**`
 * matches any run of characters, and every other character is literal. So
 * `/fhir/Patient/*\/$everything` matches `/fhir/Patient/123/$everything` and nothing below it.
 */
export function compilePathGlob(glob: string): GlobMatcher {
  const steps: GlobStep[] = [];
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === '*' && glob[i + 1] === '*') {
      const wholeSegment = glob[i - 1] === '/' && glob[i + 2] === '/';
      if (wholeSegment) {
        pushWildcard(steps, Step.WholeSegments);
        i += 2;
      } else {
        pushWildcard(steps, Step.AnyChars);
        i += 1;
      }
    } else if (char === '*') {
      pushWildcard(steps, Step.SegmentChars);
    } else {
      steps.push({ kind: Step.Literal, code: glob.charCodeAt(i) });
    }
  }

  return new AutomatonMatcher(steps);
}

/** Compiles a device pattern: `*` matches any run of characters, everything else is literal. */
export function compileDeviceGlob(pattern: string): GlobMatcher {
  const steps: GlobStep[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '*') pushWildcard(steps, Step.AnyChars);
    else steps.push({ kind: Step.Literal, code: pattern.charCodeAt(i) });
  }

  return new AutomatonMatcher(steps);
}

/** Matches when any of the compiled globs matches. */
export function anyOf(matchers: readonly GlobMatcher[]): GlobMatcher {
  return {
    matches(input: string): boolean {
      for (const matcher of matchers) {
        if (matcher.matches(input)) return true;
      }
      return false;
    },
  };
}

/**
 * Appends a wildcard, merging it with a wildcard right before it when the pair matches the
 * same strings as one of them. Merging keeps the automaton small, and the matcher stays
 * linear without it.
 */
function pushWildcard(steps: GlobStep[], kind: Step): void {
  const previous = steps.at(-1);
  if (previous !== undefined && previous.kind !== Step.Literal) {
    if (previous.kind === kind) return;
    if (previous.kind === Step.AnyChars) return;
    if (kind === Step.AnyChars) {
      steps[steps.length - 1] = { kind, code: -1 };
      return;
    }
  }
  steps.push({ kind, code: -1 });
}

/**
 * A glob as a nondeterministic automaton. State `i` means "steps before `i` have matched".
 * Each {@link Step.WholeSegments} step `i` also has an inner state for "inside a segment that
 * still needs its `/`", stored at index `i + steps.length + 1`.
 */
class AutomatonMatcher implements GlobMatcher {
  readonly #steps: readonly GlobStep[];
  readonly #literal: string | undefined;

  constructor(steps: readonly GlobStep[]) {
    this.#steps = steps;
    this.#literal = steps.every((step) => step.kind === Step.Literal) ? String.fromCharCode(...steps.map((step) => step.code)) : undefined;
  }

  matches(input: string): boolean {
    if (this.#literal !== undefined) return input === this.#literal;

    const steps = this.#steps;
    const count = steps.length;
    const inner = count + 1;
    let current = new Uint8Array(inner * 2);
    let next = new Uint8Array(inner * 2);
    current[0] = 1;
    this.#close(current);

    for (let position = 0; position < input.length; position++) {
      const code = input.charCodeAt(position);
      next.fill(0);
      let alive = false;
      for (let state = 0; state < count; state++) {
        const step = steps[state]!;
        if (current[state] === 1) {
          switch (step.kind) {
            case Step.Literal:
              if (code === step.code) next[state + 1] = 1;
              break;
            case Step.SegmentChars:
              if (code !== SLASH) next[state] = 1;
              break;
            case Step.AnyChars:
              next[state] = 1;
              break;
            case Step.WholeSegments:
              if (code === SLASH) next[state] = 1;
              else next[state + inner] = 1;
              break;
          }
        }
        if (step.kind === Step.WholeSegments && current[state + inner] === 1) {
          if (code === SLASH) next[state] = 1;
          else next[state + inner] = 1;
        }
      }
      this.#close(next);
      for (let state = 0; state < next.length; state++) {
        if (next[state] === 1) {
          alive = true;
          break;
        }
      }
      if (!alive) return false;
      [current, next] = [next, current];
    }

    return current[count] === 1;
  }

  /** Adds the states reachable without reading a character: every wildcard may match nothing. */
  #close(states: Uint8Array): void {
    const steps = this.#steps;
    for (let state = 0; state < steps.length; state++) {
      if (states[state] === 1 && steps[state]!.kind !== Step.Literal) states[state + 1] = 1;
    }
  }
}
