/**
 * Maximum count allowed in a counted repetition such as `{1,100}` in a pattern for
 * `matches`. RE2 itself accepts up to 1000, but every call compiles that many copies.
 */
export const MAX_REGEX_REPETITION = 100;

/**
 * Estimates the size of the program that RE2 compiles from a regular expression, in
 * instructions. Every literal character, escape, `.` and character class counts 1, and
 * an alternation counts its branches plus 1 for each `|`. `*`, `+` and `?` add 1. A counted
 * repetition `{n,m}` multiplies the size of what it repeats by m (by n + 1 for `{n,}`),
 * because RE2 expands it into that many copies. RE2's time to match a string grows with
 * this size times the length of the string.
 *
 * The pattern is assumed to be valid RE2 syntax. For invalid syntax the result is still a
 * finite number, but no more than a guess.
 */
export function estimateRegexSize(pattern: string): number {
  const parser = new RegexSizeParser(pattern);

  return Math.max(1, parser.alternation());
}

/** Returns the largest count of a counted repetition in a regular expression, 0 without one. */
export function largestRepetitionCount(pattern: string): number {
  const parser = new RegexSizeParser(pattern);
  parser.alternation();

  return parser.largestCount;
}

class RegexSizeParser {
  readonly #pattern: string;
  #position = 0;
  largestCount = 0;

  constructor(pattern: string) {
    this.#pattern = pattern;
  }

  /** Parses branches separated by `|` up to a closing `)` or the end, and returns the sum of their sizes. */
  alternation(): number {
    let size = this.#concatenation();
    while (this.#peek() === '|') {
      this.#position++;
      size += 1 + this.#concatenation();
    }

    return size;
  }

  #concatenation(): number {
    let size = 0;
    while (this.#position < this.#pattern.length && this.#peek() !== '|' && this.#peek() !== ')') {
      size += this.#repetition(this.#atom());
    }

    return size;
  }

  /** Applies the quantifiers after an atom of `size` instructions. */
  #repetition(size: number): number {
    for (;;) {
      const next = this.#peek();
      if (next === '*' || next === '+' || next === '?') {
        this.#position++;
        size += 1;
      } else if (next === '{') {
        const counted = /^\{(\d+)(,(\d*))?\}/.exec(this.#pattern.slice(this.#position));
        if (counted === null) return size;

        this.#position += counted[0].length;
        const min = Number(counted[1]);
        let max = min;
        if (counted[3] !== undefined && counted[3] !== '') max = Number(counted[3]);
        this.largestCount = Math.max(this.largestCount, max);
        if (counted[3] === '') max = min + 1;
        size *= Math.max(1, max);
      } else {
        return size;
      }
      if (this.#peek() === '?') this.#position++;
    }
  }

  /** Parses one atom and returns its size. A group that only sets flags, such as `(?i)`, has size 0. */
  #atom(): number {
    const character = this.#pattern[this.#position++]!;

    if (character === '(') return this.#group();
    if (character === '[') return this.#characterClass();
    if (character === '\\') return this.#escape();
    return 1;
  }

  /** Parses a group after its `(`. A capturing group adds 2 instructions that record where it starts and ends. */
  #group(): number {
    let capturing = true;
    if (this.#peek() === '?') {
      const flags = /^\?[a-zA-Z-]*\)/.exec(this.#pattern.slice(this.#position));
      if (flags !== null) {
        this.#position += flags[0].length;
        return 0;
      }
      const prefix = /^\?(P?<[^>]*>|[a-zA-Z-]*:)/.exec(this.#pattern.slice(this.#position));
      if (prefix !== null) {
        this.#position += prefix[0].length;
        capturing = prefix[1]!.endsWith('>');
      }
    }

    const size = this.alternation();
    if (this.#peek() === ')') this.#position++;

    return capturing ? size + 2 : size;
  }

  #characterClass(): number {
    if (this.#peek() === '^') this.#position++;
    if (this.#peek() === ']') this.#position++;

    while (this.#position < this.#pattern.length && this.#peek() !== ']') {
      if (this.#pattern.startsWith('[:', this.#position)) {
        const end = this.#pattern.indexOf(':]', this.#position + 2);
        this.#position = end === -1 ? this.#position + 1 : end + 2;
      } else if (this.#peek() === '\\') {
        this.#position++;
        this.#escape();
      } else {
        this.#position++;
      }
    }
    this.#position++;

    return 1;
  }

  /** Skips an escape after its backslash. `\Q...\E` counts one instruction per quoted character. */
  #escape(): number {
    const character = this.#pattern[this.#position++];

    if (character === 'Q') {
      const end = this.#pattern.indexOf('\\E', this.#position);
      const quoted = (end === -1 ? this.#pattern.length : end) - this.#position;
      this.#position = end === -1 ? this.#pattern.length : end + 2;
      return Math.max(1, quoted);
    }
    if ((character === 'p' || character === 'P' || character === 'x') && this.#peek() === '{') {
      const end = this.#pattern.indexOf('}', this.#position);
      this.#position = end === -1 ? this.#pattern.length : end + 1;
    } else if (character === 'p' || character === 'P') {
      this.#position++;
    } else if (character === 'x') {
      this.#position += 2;
    }

    return 1;
  }

  #peek(): string | undefined {
    return this.#pattern[this.#position];
  }
}
